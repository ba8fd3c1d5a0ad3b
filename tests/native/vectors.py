"""Run the JSON test vectors on tests/native/vectors_runner.c: the C
interpreter with no Python extension, natively or cross-built (e.g. for
aarch64 under qemu-user: `make test-aarch64`).

    python tests/native/vectors.py [--runner PROGRAM ...] PATH...

``--runner`` is the command to start (default: build the runner here with
CC or cc); the JSON is turned into the runner's binary cases and its
results compared field by field with the expectations, as
``python -m vmcore vectors`` does (with src/vmcore/outcome.py, loaded by
path).  Needs only the standard library (it does not import vmcore).  Prints "N passed, M failed"; exit status 1 on
any failure."""
import argparse
import ast
import importlib.util
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# the runner's page (VM_DEFAULT_PAGE_SIZE, read from the header as isa_numbers() reads opcodes.h)
PAGE_SIZE = int(re.search(r"#define VM_DEFAULT_PAGE_SIZE (0x[0-9a-fA-F]+)u",
                          (ROOT / "include" / "vmcore" / "abi.h").read_text()).group(1), 16)
SOURCES = ["tests/native/vectors_runner.c"] + [
    f"src/vmcore/_native/{n}.c" for n in ("decoder", "program", "interp", "interp_build", "memory", "guest_memory", "gas")]
STATUS = {0: "halt", 1: "panic", 2: "host", 3: "out-of-gas", 4: "page-fault", 100: "load error",
          101: "panic", 102: "out-of-gas"}


def isa_numbers():
    """Instruction-set name -> vm_isa, from VM_ISAS in opcodes.h."""
    text = (ROOT / "include" / "vmcore" / "opcodes.h").read_text()
    block = re.search(r"#define VM_ISAS\(X\)(.*?)\n\n", text, re.S).group(1)
    return {name: i for i, name in enumerate(re.findall(r'X\(\w+, "(\w+)", \d\)', block))}


def build_native(out_dir):
    cc = shlex.split(os.environ.get("CC") or "cc")
    out = Path(out_dir) / "vectors_runner"
    subprocess.run([*cc, "-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", f"-I{ROOT / 'include'}",
                    *[str(ROOT / s) for s in SOURCES], "-o", str(out)], check=True)
    return [str(out)]


def pages_of(vector):
    pages = set()
    for entry in vector["initial-page-map"]:
        start = entry["address"] - entry["address"] % PAGE_SIZE
        pages.update(range(start, entry["address"] + entry["length"], PAGE_SIZE))
    return sorted(pages)


def encode(vector, isas):
    blob = bytes(vector["program"])
    out = [struct.pack("<4sII", b"VMVC", isas[vector.get("isa", "latest64")], len(blob)), blob]
    page_map = vector["initial-page-map"]
    out.append(struct.pack("<I", len(page_map)))
    for e in page_map:
        out.append(struct.pack("<III", e["address"], e["length"], 1 if e["is-writable"] else 0))
    chunks = vector["initial-memory"]
    out.append(struct.pack("<I", len(chunks)))
    for c in chunks:
        data = bytes(c["contents"])
        out.append(struct.pack("<II", c["address"], len(data)) + data)
    out.append(struct.pack("<13Q", *[int(r) for r in vector["initial-regs"]]))
    pages = pages_of(vector)
    out.append(struct.pack("<qII", int(vector["initial-gas"]), int(vector["initial-pc"]), len(pages)))
    out.append(struct.pack(f"<{len(pages)}I", *pages))
    return b"".join(out)


def decode(stream, vector):
    head = stream.read(20)
    if len(head) < 20:
        raise EOFError("the runner stopped answering")
    magic, status, pc, gas = struct.unpack("<4sIIq", head)
    if magic != b"VMVR":
        raise RuntimeError("the runner's output is out of step")
    regs = list(struct.unpack("<13Q", stream.read(13 * 8)))
    (arg,) = struct.unpack("<I", stream.read(4))
    memory = {}
    for page in pages_of(vector):
        (perm,) = struct.unpack("<I", stream.read(4))
        if perm:
            memory[page] = stream.read(PAGE_SIZE)
    name = STATUS.get(status, f"unexpected exit {status}")
    return {"status": name, "pc": pc, "gas": gas, "regs": regs, "memory": memory,
            "page-fault": arg if status == 4 else None, "hostcall": arg if status == 2 else None}


def _load_outcome_module():
    """vmcore.outcome (the one comparison of an outcome with a vector's
    expectations), loaded by path: it needs only the standard library."""
    spec = importlib.util.spec_from_file_location("vmcore_outcome", ROOT / "src" / "vmcore" / "outcome.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    return module


OUTCOME = _load_outcome_module()


def compare(vector, got):
    """The differences vmcore.vectors.compare reports, on the runner's result."""
    outcome = OUTCOME.Outcome(got["status"], got["pc"], got["gas"], got["regs"], got["memory"], got["page-fault"],
                              got["hostcall"])
    return OUTCOME.differences(OUTCOME.expectations_of_v04(vector), outcome)


def superseded():
    """vmcore.vectors.SUPERSEDED (expectations PolkaVM 0.35 changed), read
    from its source with ast so this driver stays stdlib-only."""
    tree = ast.parse((ROOT / "src" / "vmcore" / "vectors.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "SUPERSEDED" for t in node.targets):
            return ast.literal_eval(node.value)
    raise SystemExit("SUPERSEDED not found in src/vmcore/vectors.py")


def load(path, table):
    """A v0.4 vector with superseded expectations replaced (None for other
    JSON: the v0.5 steps format, schemas)."""
    v = json.loads(path.read_text())
    if not isinstance(v, dict) or "initial-regs" not in v:
        return None
    entry = table.get(v.get("name", ""))
    if entry is not None and list(v.get("program", ())) == entry[0]:
        v.update(entry[2])
    return v


def collect(paths):
    files = []
    for path in paths:
        p = Path(path)
        files.extend(sorted(p.rglob("*.json")) if p.is_dir() else [p])
    return files


def run(runner, files, verbose=False):
    isas = isa_numbers()
    table = superseded()
    loaded = [(f, load(f, table)) for f in files]
    files = [f for f, v in loaded if v is not None]
    vectors = [v for _, v in loaded if v is not None]
    with tempfile.TemporaryFile() as cases:
        for v in vectors:
            cases.write(encode(v, isas))
        cases.seek(0)
        proc = subprocess.Popen(runner, stdin=cases, stdout=subprocess.PIPE)
        passed = failed = 0
        try:
            for path, v in zip(files, vectors):
                try:
                    got = decode(proc.stdout, v)
                except EOFError as e:
                    print(f"FAIL {v.get('name', path.name)} ({path}): {e}")
                    failed += 1
                    break
                diffs = compare(v, got)
                if diffs:
                    failed += 1
                    print(f"FAIL {v.get('name', path.name)} ({path})")
                    for d in diffs:
                        print(f"    {d}")
                else:
                    passed += 1
                    if verbose:
                        print(f"PASS {v.get('name', path.name)}")
        finally:
            proc.stdout.close()
            rc = proc.wait()
    if rc != 0:
        print(f"the runner exited with status {rc}")
        failed = failed or 1
    return passed, failed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runner", help="command that starts the runner (default: build one with CC)")
    parser.add_argument("-v", "--verbose", action="store_true")
    parser.add_argument("paths", nargs="+")
    args = parser.parse_args(argv)
    files = collect(args.paths)
    if not files:
        print("error: no vector files found", file=sys.stderr)
        return 2
    tmp = None
    try:
        if args.runner:
            runner = shlex.split(args.runner)
        else:
            tmp = tempfile.mkdtemp()
            runner = build_native(tmp)
        passed, failed = run(runner, files, args.verbose)
    finally:
        if tmp:
            shutil.rmtree(tmp)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
