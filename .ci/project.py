"""What .ci/run and the Makefile read from the project's own files, so that
no command or requirement is written down twice.

    python .ci/project.py quickstart       the README's quick-start commands, one a line
    python .ci/project.py build-requires   pyproject.toml's [build-system] requires
    python .ci/project.py extra NAME       an optional-dependencies extra (e.g. docs)
    python .ci/project.py check-wheel WHL  the wheel ships only what runs (prints its size)

Plain Python 3.9 (no tomllib): pyproject.toml's lists are read with a small
parser of the one-string-per-item arrays it uses."""
import ast
import re
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quickstart():
    """The commands of the README's first ```sh block under '## Quick start'."""
    readme = (ROOT / "README.md").read_text()
    match = re.search(r"^## Quick start\s*\n+```sh\n(.*?)^```", readme, re.S | re.M)
    if match is None:
        raise SystemExit("README.md has no '## Quick start' section opening with a ```sh block")
    return [line for line in match.group(1).splitlines() if line.strip() and not line.startswith("#")]


def _toml_array(section, key):
    text = (ROOT / "pyproject.toml").read_text()
    body = re.search(r"^\[" + re.escape(section) + r"\]\n(.*?)(?=^\[|\Z)", text, re.S | re.M)
    if body is None:
        raise SystemExit(f"pyproject.toml has no [{section}]")
    value = re.search(r"^" + re.escape(key) + r"\s*=\s*(\[.*?\])[ \t]*(?:#[^\n]*)?$", body.group(1), re.S | re.M)
    if value is None:
        raise SystemExit(f"pyproject.toml [{section}] has no {key}")
    return ast.literal_eval(re.sub(r"#[^\n]*", "", value.group(1)))


# Sources and build leftovers that must not be in a wheel
NOT_IN_WHEEL = (".c", ".h", ".pyx", ".pxd", ".o", ".html")
NEEDED_IN_WHEEL = ("vmcore/__init__.py", "vmcore/py.typed", "vmcore/data/demo.asm")
MAX_WHEEL_BYTES = 2_000_000


def check_wheel(path):
    """Fail unless the wheel holds only what runs: no sources, the compiled
    modules without debug information, the zygote on x86-64."""
    problems = []
    with zipfile.ZipFile(path) as whl:
        names = whl.namelist()
        for name in names:
            if name.endswith(NOT_IN_WHEEL) or "/_native/" in name:
                problems.append(f"source file in the wheel: {name}")
            if ".so" in name.rsplit("/", 1)[-1] and b".debug_info" in whl.read(name):
                problems.append(f"not stripped of debug information: {name}")
        for name in NEEDED_IN_WHEEL:
            if name not in names:
                problems.append(f"missing from the wheel: {name}")
        if "x86_64" in Path(path).name and "vmcore/_zygote" not in names:
            problems.append("missing from the wheel: vmcore/_zygote")
        if not any(n.startswith("vmcore/_engine.") and n.endswith(".so") for n in names):
            problems.append("missing from the wheel: the compiled vmcore._engine")
    size = Path(path).stat().st_size
    if size > MAX_WHEEL_BYTES:
        problems.append(f"the wheel is {size:,} bytes (more than {MAX_WHEEL_BYTES:,})")
    for p in problems:
        print(f"check-wheel: {p}", file=sys.stderr)
    print(f"wheel {Path(path).name}: {size:,} bytes, {len(names)} files")
    return 1 if problems else 0


def main(argv):
    if argv[:1] == ["quickstart"]:
        print("\n".join(quickstart()))
    elif argv[:1] == ["build-requires"]:
        print("\n".join(_toml_array("build-system", "requires")))
    elif argv[:1] == ["extra"] and len(argv) == 2:
        print("\n".join(_toml_array("project.optional-dependencies", argv[1])))
    elif argv[:1] == ["check-wheel"] and len(argv) == 2:
        return check_wheel(argv[1])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
