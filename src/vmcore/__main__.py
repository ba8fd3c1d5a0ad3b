"""``python -m vmcore``: info, asm, disasm, run, vectors, demo, fuzz.

Bad input gives a one-line error on stderr and exit status 2, never a
traceback."""
from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

from vmcore.errors import VmError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, like every other bad input
        self.exit(2, f"{self.prog}: error: {message}\n")


def _fail(message: str) -> int:
    print(f"vmcore: error: {message}", file=sys.stderr)
    return 2


def _load(path: str, raw: bool = False, isa: Optional[str] = None):
    from vmcore.program import DEFAULT_RAW_ISA, Program
    with open(path, "rb") as f:
        data = f.read()
    if raw:
        return Program.from_raw_code(data, isa=isa or DEFAULT_RAW_ISA)
    if data[:4] != b"PVM\0" and path.endswith((".jam", ".pvm")):
        return Program.from_jam_standard(data)
    return Program.from_bytes(data)


def cmd_info(args) -> int:
    program = _load(args.file, args.raw, args.isa)
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


def describe(program, page_size: int = 0x1000) -> str:
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
    return int(text, 0)


def cmd_run(args) -> int:
    from vmcore.sandbox import Sandbox
    program = _load(args.file, args.raw, args.isa)
    if args.export not in program.exports:
        known = ", ".join(program.exports) or "none"
        return _fail(f"{args.file} has no export {args.export!r} (exports: {known})")
    try:
        sb = Sandbox(program, backend=args.backend, isolation=args.isolation, gas=args.gas, gas_model=args.gas_model)
    except ValueError as e:
        return _fail(str(e))
    start = time.perf_counter()
    result = sb.call(args.export, *args.args)
    elapsed = time.perf_counter() - start
    print(f"result:  {result}")
    if args.gas is not None:
        print(f"gas:     {args.gas - sb.gas} used, {sb.gas} left ({sb.gas_model} model)")
    print(f"time:    {elapsed * 1e3:.3f} ms ({sb.backend}/{sb.isolation})")
    return 0


def cmd_vectors(args) -> int:
    from vmcore.vectors import main_vectors
    isolation = args.isolation or ("process" if args.backend == "compiler" else "inline")
    return main_vectors(args.paths, backend=args.backend, isolation=isolation, verbose=args.verbose)


def cmd_fuzz(args) -> int:
    from vmcore.fuzz import main
    return main(args)


def cmd_demo(args) -> int:
    from vmcore.demo import main
    return main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python -m vmcore", description="Run and inspect PolkaVM / JAM PVM guest programs.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    p = sub.add_parser("info", help="show a program's ISA, sizes, exports, imports and memory map")
    p.add_argument("file")
    p.add_argument("--raw", action="store_true", help="FILE is a raw JAM code blob")
    p.add_argument("--isa", help="instruction set of a raw blob (default latest64)")
    p.add_argument("--page-size", type=_parse_int, default=0x1000)
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
    p.add_argument("--gas-model", default=None,
                   help="cost model: naive, full, full-l1, full-l3 (default: full for jam_v1, else naive)")
    p.add_argument("--backend", default="auto", choices=["auto", "interpreter", "compiler"])
    p.add_argument("--isolation", default="auto", choices=["auto", "inline", "process"])
    p.add_argument("--raw", action="store_true", help="FILE is a raw JAM code blob")
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
    p.add_argument("--target", choices=["loader", "diff", "all"], default="all")
    p.add_argument("--out", default="fuzz-out", help="directory for reproducers (default ./fuzz-out)")
    p.add_argument("--replay", type=int, default=None, metavar="I", help="run case I only, in this process")
    p.add_argument("--oracle", nargs="?", const="", default=None, metavar="PATH",
                   help="also compare with the Python model of the semantics (tests/oracle.py, or PATH)")
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
        parser.print_help()
        return 2
    return _guard(lambda: args.func(args))


def _guard(fn) -> int:
    try:
        return fn()
    except VmError as e:
        return _fail(f"{type(e).__name__}: {e}")
    except OSError as e:
        return _fail(f"{e.strerror or e}: {e.filename}" if e.filename else str(e))
    except (ValueError, KeyError, TypeError, NotImplementedError) as e:
        return _fail(str(e).strip("'\""))
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
