"""Every number include/vmcore/abi.h defines is read from it (vmcore.abi,
or a cimport in the engine), never re-typed in vmcore's Python or Cython:
the argument registers, the register count, the return-to-host address,
entry codes, page sizes."""
import re
from pathlib import Path

import vmcore
from vmcore import abi

PACKAGE = Path(vmcore.__file__).resolve().parent
SOURCES = sorted([*PACKAGE.glob("*.py"), *PACKAGE.glob("*.pyx"), *PACKAGE.glob("engine/*.pyx")])
# Tools another part of the project is moving onto the public API; they
# still carry their own register tables until then.
NOT_YET = {"vectors.py", "vectors_v05.py", "crosscheck.py", "fuzz.py", "fuzz_hostile.py", "fuzz_reference.py",
           "jam.py", "asm.py"}

RETYPED = {
    "the argument registers": re.compile(r"7,\s*8,\s*9,\s*10,\s*11,\s*12,\s*2,\s*3,\s*4"),
    "the argument names": re.compile(r"\(\s*\"a0\",\s*\"a1\",\s*\"a2\""),
    "the register count": re.compile(r"(range\(|[<>]=?\s*|== )13\b|\b13 register|\(0\.\.12\)"),
    "the return-to-host address": re.compile(r"(?<!\w)0x[fF]{4}0000\b(?!\))"),
    "an entry code": re.compile(r"rc == -[12]\b"),
    "the default page size": re.compile(r"(PAGE_SIZE|page_size[^=]*) ?= 0x1000\b|default=0x1000\b"),
    "an exit code of the hostcall loop": re.compile(r"EXIT_(HOSTCALL_ERROR|BUSY) = \d"),
}


def test_the_abi_header_is_the_source():
    assert abi.ARG_REGS == (7, 8, 9, 10, 11, 12, 2, 3, 4) and abi.REG_COUNT == 13
    assert abi.RETURN_TO_HOST == 0xFFFF0000 and abi.DEFAULT_PAGE_SIZE == 0x1000


def test_no_source_re_types_an_abi_number():
    assert len(SOURCES) > 20, SOURCES
    found = []
    for path in SOURCES:
        if path.name in NOT_YET:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if '"""' in line:
                continue
            for what, pattern in RETYPED.items():
                if pattern.search(code):
                    found.append(f"{path.relative_to(PACKAGE)}:{number}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_check_catches_a_retyped_number(tmp_path):
    assert RETYPED["the argument registers"].search("ARG_REGS = (7, 8, 9, 10, 11, 12, 2, 3, 4)")
    assert RETYPED["the register count"].search("for i in range(13):")
    assert RETYPED["an entry code"].search("if rc == -2:")
    assert RETYPED["the default page size"].search("DEFAULT_PAGE_SIZE = 0x1000")
