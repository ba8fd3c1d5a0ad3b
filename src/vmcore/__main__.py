"""``python -m vmcore``: info, asm, disasm, run, vectors, demo, fuzz.

Every error is one line on stderr, ``vmcore: error: ...``, never a
traceback.  Exit status: 0 success, 1 a runtime error (the guest trapped,
ran out of gas or time, a hostcall failed, the sandbox failed; failing
vectors), 2 a usage error (bad arguments, an unreadable or malformed input
file)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Dict, List, Optional

from vmcore.abi import DEFAULT_PAGE_SIZE
from vmcore.debuginfo import format_guest_traceback
from vmcore.errors import VmError

EXIT_RUNTIME = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a SIGINT
FORMATS = ("auto", "polkavm", "jam", "raw")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, like every other bad input
        self.exit(EXIT_USAGE, f"vmcore: error: {message}\n")


def _fail(message: str, status: int = EXIT_USAGE) -> int:
    print(f"vmcore: error: {message}", file=sys.stderr)
    return status


def _load(path: str, raw: bool = False, isa: Optional[str] = None, fmt: str = "auto"):
    """A program file of any format: ``.polkavm`` (recognised by its magic),
    a JAM standard program (recognised by parsing as one, whatever the
    file is called) or, with ``--raw`` / ``--format raw``, a JAM code blob."""
    from vmcore.errors import ProgramError
    from vmcore.program import DEFAULT_RAW_ISA, Program
    with open(path, "rb") as f:
        data = f.read()
    if raw:
        fmt = "raw"
    if fmt == "raw":
        return Program.from_raw_code(data, isa=isa or DEFAULT_RAW_ISA)
    if isa:
        raise ValueError("--isa only applies to raw code blobs (--raw / --format raw)")
    if fmt == "polkavm" or (fmt == "auto" and data[:4] == b"PVM\0"):
        return Program.from_bytes(data)
    if fmt == "jam":
        return Program.from_jam_standard(data)
    try:
        return Program.from_jam_standard(data)
    except ProgramError as e:
        raise ProgramError(f"{path} is neither a .polkavm blob (no 'PVM\\0' magic) nor a JAM standard program "
                           f"({e.reason}); pass --format or --raw to say which it is") from None


def cmd_info(args) -> int:
    program = _load(args.file, args.raw, args.isa, args.format)
    print(describe(program, args.page_size))
    if args.gas:
        from vmcore import gas
        try:
            model = gas.resolve(args.gas_model, program.isa)
        except ValueError as e:
            return _fail(str(e))
        costs = program.block_gas_costs(model)
        print(f"block gas costs ({model.name} model, {len(costs)} blocks; pc: cost):")
        for pc, cost in costs.items():
            print(f"  {pc:>8}: {cost}")
    return 0


def describe(program, page_size: int = DEFAULT_PAGE_SIZE) -> str:
    mm = program.memory_map(page_size)
    lines = [
        f"format:        {program.format}",
        f"isa:           {program.isa} ({'64' if program.is_64_bit else '32'}-bit registers)",
        f"code:          {len(program.code)} bytes, {program.instruction_count()} instructions, "
        f"{program.basic_block_count()} basic blocks",
        f"jump table:    {len(program.jump_table)} entries",
        f"ro data:       {len(program.ro_data)} bytes initialised, {program.ro_data_size} declared",
        f"rw data:       {len(program.rw_data)} bytes initialised, {program.rw_data_size} declared",
        f"stack:         {program.stack_size} bytes",
        "exports:       " + (", ".join(f"{n} @ {pc}" for n, pc in program.exports.items()) or "none"),
        "imports:       " + (", ".join(f"#{i} {n}" for i, n in enumerate(program.imports)) or "none"),
        f"memory map (page size {mm.page_size:#x}):",
        mm.describe(),
    ]
    return "\n".join(lines + [f"warning: {w}" for w in program.warnings])


def cmd_asm(argv: List[str]) -> int:
    from vmcore import asm
    return asm.main(argv)


def cmd_disasm(argv: List[str]) -> int:
    from vmcore import disasm
    return disasm.main(argv)


def _parse_int(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (inf: none), got {text!r}")
    return value


def _parse_hostcall(text: str):
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return name, _parse_int(value)


_STATUS = {"Trap": "trap", "OutOfGas": "out-of-gas", "PageFault": "page-fault", "Timeout": "timeout",
           "HostcallError": "hostcall-error", "SandboxError": "sandbox-error", "SandboxBusy": "sandbox-error"}


def cmd_run(args) -> int:
    from vmcore.sandbox import Sandbox
    program = _load(args.file, args.raw, args.isa, args.format)
    if args.export not in program.exports:
        known = ", ".join(program.exports) or "none"
        return _fail(f"{args.file} has no export {args.export!r} (exports: {known})")
    stubs: Dict[str, int] = dict(args.hostcall or ())
    for name in stubs:
        if name not in program.imports:
            known = ", ".join(program.imports) or "none"
            return _fail(f"--hostcall {name}=...: {args.file} has no import {name!r} (imports: {known})")
    try:
        sb = Sandbox(program, backend=args.backend, isolation=args.isolation, gas=args.gas,
                     gas_model=args.gas_model)
    except ValueError as e:
        return _fail(str(e))
    for name, value in stubs.items():
        sb.register_hostcall(name, lambda caller, _value=value: _value)
    timeout = None if args.timeout is None or args.timeout == float("inf") else args.timeout
    record: Dict[str, object] = {"export": args.export, "args": args.args, "backend": sb.backend,
                                 "isolation": sb.isolation, "gas_model": sb.gas_model}
    start = time.perf_counter()
    try:
        result = sb.call(args.export, *args.args, timeout=timeout)
        error: Optional[VmError] = None
    except VmError as e:
        result, error = None, e
    except KeyboardInterrupt:  # the guest was stopped (vmcore/sigint.h)
        pc = sb.pc if not sb.closed else None
        sb.close()
        return _fail(f"interrupted (Ctrl-C) at pc {pc}", EXIT_INTERRUPTED)
    elapsed = time.perf_counter() - start
    gas_left = sb.gas if not sb.closed else None
    record.update(status="finished" if error is None else _STATUS.get(type(error).__name__, "error"),
                  result=result, pc=(error.pc if error is not None else sb.pc if not sb.closed else None),
                  gas_limit=args.gas, gas_used=(args.gas - gas_left) if gas_left is not None else None,
                  gas_left=gas_left, seconds=round(elapsed, 6),
                  error=None if error is None else f"{type(error).__name__}: {error}")
    # source frames, when the program's debug info has them (vmcore.debuginfo)
    frames = [str(f) for f in getattr(error, "guest_traceback", ()) if f.function or f.path]
    if frames:
        record["guest_traceback"] = frames
    sb.close()
    if args.json:
        print(json.dumps(record))
    if error is not None:
        if frames and not args.json:
            print(format_guest_traceback(error), end="", file=sys.stderr)
        return _fail(str(record["error"]), EXIT_RUNTIME)
    if not args.json:
        print(f"result:  {result}")
        if args.gas is not None:
            print(f"gas:     {record['gas_used']} used, {gas_left} left ({record['gas_model']} model)")
        print(f"time:    {elapsed * 1e3:.3f} ms ({record['backend']}/{record['isolation']})")
    return 0


def cmd_vectors(args) -> int:
    import os
    from vmcore.vectors import check_configuration, collect, main_vectors
    isolation = args.isolation or ("process" if args.backend == "compiler" else "inline")
    missing = [p for p in args.paths if not os.path.exists(p)]
    if missing:
        return _fail(f"no such file or directory: {missing[0]}")
    try:
        check_configuration(args.backend, isolation)
    except ValueError as e:
        return _fail(str(e))
    files = collect(args.paths)
    if not files:
        return _fail("no vector files found")
    for path in files:  # a file that is not JSON is a usage error, not a failed vector
        try:
            with open(path, "rb") as f:
                json.load(f)
        except (ValueError, UnicodeDecodeError) as e:
            return _fail(f"{path} is not a JSON test vector ({e})")
    return main_vectors(args.paths, backend=args.backend, isolation=isolation, verbose=args.verbose)


def cmd_fuzz(args) -> int:
    from vmcore.fuzz import main
    return main(args)


def cmd_demo(args) -> int:
    from vmcore.demo import main
    return main(args)


def build_parser() -> argparse.ArgumentParser:
    from vmcore._version import __version__
    parser = _Parser(prog="python -m vmcore", description="Run and inspect PolkaVM / JAM PVM guest programs.")
    parser.add_argument("--version", action="version", version=f"vmcore {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="show a program's ISA, sizes, exports, imports and memory map")
    p.add_argument("file")
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="auto (default): .polkavm by its magic, else a JAM standard program")
    p.add_argument("--raw", action="store_true", help="FILE is a raw JAM code blob (--format raw)")
    p.add_argument("--isa", help="instruction set of a raw blob (default latest64)")
    p.add_argument("--page-size", type=_parse_int, default=DEFAULT_PAGE_SIZE)
    p.add_argument("--gas", action="store_true", help="also list every basic block's gas cost")
    p.add_argument("--gas-model", default=None,
                   help="cost model for --gas: naive, full, full-l1, full-l3 (default: the program's, "
                        "full for jam_v1)")
    p.set_defaults(func=cmd_info)

    sub.add_parser("asm", help="assemble FILE.asm into a .polkavm blob (see asm --help)", add_help=False)
    sub.add_parser("disasm", help="disassemble a program (see disasm --help)", add_help=False)

    p = sub.add_parser("run", help="call an export and print the result, gas used and wall time")
    p.add_argument("file")
    p.add_argument("export")
    p.add_argument("args", nargs="*", type=_parse_int, help="integer arguments (a0..a5)")
    p.add_argument("--gas", type=_parse_int, default=None, help="gas limit (default: metering off)")
    p.add_argument("--timeout", type=_parse_seconds, default=None, metavar="SECONDS",
                   help="stop the guest after this long (default, or inf: no deadline)")
    p.add_argument("--hostcall", type=_parse_hostcall, action="append", metavar="NAME=VALUE",
                   help="serve import NAME with a hostcall returning VALUE in a0 (repeatable)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON line: status, result, pc, gas used/left, seconds, error")
    p.add_argument("--gas-model", default=None,
                   help="cost model: naive, full, full-l1, full-l3 (default: full for jam_v1, else naive)")
    p.add_argument("--backend", default="auto", choices=["auto", "interpreter", "compiler"])
    p.add_argument("--isolation", default="auto", choices=["auto", "inline", "process"])
    p.add_argument("--format", choices=FORMATS, default="auto",
                   help="auto (default): .polkavm by its magic, else a JAM standard program")
    p.add_argument("--raw", action="store_true", help="FILE is a raw JAM code blob (--format raw)")
    p.add_argument("--isa", help="instruction set of a raw blob")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("vectors", help="run JSON test vectors (JAM PVM schema); exit 0 only if all pass")
    p.add_argument("paths", nargs="+", metavar="PATH", help="vector files or directories")
    p.add_argument("--backend", default="interpreter", choices=["interpreter", "compiler"])
    p.add_argument("--isolation", default=None, choices=["inline", "process"],
                   help="default: inline for the interpreter, process for the compiler")
    p.add_argument("-v", "--verbose", action="store_true")
    p.set_defaults(func=cmd_vectors)

    p = sub.add_parser("fuzz", help="fuzz the loaders and compare backends on random programs; exit 0 only "
                       "if nothing failed")
    p.add_argument("--seconds", type=float, default=60.0, help="time budget (default 60; targets run in parallel)")
    p.add_argument("--cases", type=int, default=None, help="stop each target after this many cases")
    p.add_argument("--seed", type=int, default=0, help="campaign seed (default 0)")
    p.add_argument("--target", choices=["loader", "diff", "reference", "all", "hostile-sandbox", "hostile-api"],
                   default="all", help="all = loader and diff; reference = against PolkaVM (needs --reference); "
                   "hostile-sandbox / hostile-api = the threat model's targets")
    p.add_argument("--out", default="fuzz-out", help="directory for reproducers (default ./fuzz-out)")
    p.add_argument("--replay", type=int, default=None, metavar="I", help="run case I only, in this process")
    p.add_argument("--oracle", default=None, metavar="PATH",
                   help="also compare with the Python model of the semantics at PATH (a source checkout's "
                        "tests/oracle.py)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="split the campaign across a Ray cluster (ADDRESS, or a local one; needs vmcore[ray])")
    p.add_argument("--ray-actors", type=int, default=None, metavar="N", help="with --ray: N actors (default: one "
                   "per node)")
    p.add_argument("--ray-chunk", type=int, default=None, metavar="N", help="with --ray: cases per chunk (200)")
    p.add_argument("--reference", default=None, metavar="PATH",
                   help="the refharness binary (PolkaVM 0.35) for --target reference (default $VMCORE_REFHARNESS, "
                        "else ../shared/tools/refharness beside the repository)")
    p.add_argument("--gas-model", choices=["naive", "full"], default="naive",
                   help="the reference's cost model for --target reference (default naive: 1 per instruction)")
    p.set_defaults(func=cmd_fuzz)

    p = sub.add_parser("demo", help="run the bundled demo guest with a Python hostcall")
    p.add_argument("--iterations", type=_parse_int, default=1_000_000)
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # asm/disasm own their argument parsing.
    if argv and argv[0] == "asm":
        return _guard(lambda: cmd_asm(argv[1:]))
    if argv and argv[0] == "disasm":
        return _guard(lambda: cmd_disasm(argv[1:]))
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return _guard(lambda: args.func(args))


def _guard(fn) -> int:
    try:
        return fn()
    except VmError as e:
        from vmcore.errors import ExportNotFound, ImportNotFound, ProgramError
        usage = isinstance(e, (ProgramError, ExportNotFound, ImportNotFound))
        return _fail(f"{type(e).__name__}: {e}", EXIT_USAGE if usage else EXIT_RUNTIME)
    except OSError as e:
        return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
    except (ValueError, KeyError, TypeError, NotImplementedError) as e:
        return _fail(str(e).strip("'\""))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
