"""Every number include/vmcore/abi.h defines is read from it (vmcore.abi,
or a cimport in the engine), never re-typed in vmcore's Python or Cython (the .pxd declarations
too), perf/, fuzz/ or the shared test helpers:
the argument registers, the register count, the return-to-host address,
entry codes, page sizes."""
import re
from pathlib import Path

import vmcore
from vmcore import abi

PACKAGE = Path(vmcore.__file__).resolve().parent
ROOT = Path(__file__).resolve().parent.parent
# The helpers the suites share (tests/oracle.py is left out on purpose: it
# is an independent model of the semantics, checked against vmcore.abi in
# test_the_independent_oracle_agrees below).
TEST_HELPERS = ("gen_vectors.py", "random_programs.py", "x64_runner.py", "modes.py", "conftest.py", "reliability.py",
                "native/vectors.py")
SOURCES = sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("*.pyx"), *PACKAGE.glob("engine/*.pyx"),
                  *PACKAGE.glob("includes/*.pxd"),
                  *(ROOT / "perf").glob("*.py"), *(ROOT / "fuzz").glob("*.py"),
                  *(ROOT / "tests" / name for name in TEST_HELPERS)])

RETYPED = {
    "the argument registers": re.compile(r"7,\s*8,\s*9,\s*10,\s*11,\s*12,\s*2,\s*3,\s*4"),
    "the argument names": re.compile(r"\(\s*\"a0\",\s*\"a1\",\s*\"a2\""),
    "the register count": re.compile(r"(range\(|[<>]=?\s*|== |\* )13\b|\b13 register|\(0\.\.12\)|regs\[1[34]\]"),
    "the return-to-host address": re.compile(r"(?<!\w)0x[fF]{4}0000\b(?!\))"),
    "an entry code": re.compile(r"rc == -[12]\b"),
    "the default page size": re.compile(r"(PAGE_SIZE|page_size[^=]*) ?= 0x1000\b|default=0x1000\b"),
    "the page size": re.compile(r"\bPAGE(_SIZE)? = (4096|0x1000|1 << 12)\b"),
    "an exit code of the hostcall loop": re.compile(r"EXIT_(HOSTCALL_ERROR|BUSY) = \d"),
}


def test_the_abi_header_is_the_source():
    assert abi.ARG_REGS == (7, 8, 9, 10, 11, 12, 2, 3, 4) and abi.REG_COUNT == 13
    assert abi.RETURN_TO_HOST == 0xFFFF0000 and abi.DEFAULT_PAGE_SIZE == 0x1000


def test_the_abi_names_every_register():
    names = ("RA", "SP", "T0", "T1", "T2", "S0", "S1", "A0", "A1", "A2", "A3", "A4", "A5")
    assert tuple(getattr(abi, "REG_" + name) for name in names) == tuple(range(abi.REG_COUNT))
    assert abi.ARG_REGS == tuple(getattr(abi, "REG_" + name.upper()) for name in abi.ARG_NAMES)


def test_the_independent_oracle_agrees():
    import oracle

    assert oracle.RETURN_TO_HOST == abi.RETURN_TO_HOST


def test_no_source_re_types_an_abi_number():
    assert len(SOURCES) > 20, SOURCES
    found = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if '"""' in line:
                continue
            for what, pattern in RETYPED.items():
                if pattern.search(code):
                    found.append(f"{path}:{number}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_check_catches_a_retyped_number(tmp_path):
    assert RETYPED["the argument registers"].search("ARG_REGS = (7, 8, 9, 10, 11, 12, 2, 3, 4)")
    assert RETYPED["the register count"].search("for i in range(13):")
    assert RETYPED["an entry code"].search("if rc == -2:")
    assert RETYPED["the default page size"].search("DEFAULT_PAGE_SIZE = 0x1000")
    assert RETYPED["the page size"].search("PAGE = 4096")
    assert RETYPED["the register count"].search("regs = [0] * 13")
    assert RETYPED["the page size"].search("PAGE_SIZE = 4096")
    assert RETYPED["the register count"].search("        uint64_t regs[14]")
    assert RETYPED["the register count"].search("    const uint8_t vm_x64_guest_regs[13]")
