"""Source locations from debug info (vmcore.debuginfo): the assembler's
%loc writes PolkaVM's three debug sections, Program.source_location reads
them back, guest errors carry guest_traceback, disasm --source prints
them; malformed debug info never breaks loading or running.  Real
linker output: $VMCORE_QUAKE (PolkaVM's examples/quake/code/quake.polkavm,
which keeps its debug info; skips without it); DOOM's blob is stripped."""
from __future__ import annotations

import os
import pickle
import random
import struct
from pathlib import Path

import pytest

import vmcore
from vmcore import _engine, debuginfo
from vmcore.asm import AsmError, assemble
from vmcore.asm_debug import encode_sections, entries_of, loc_text, parse_loc
from vmcore.disasm import disassemble, main as disasm_main

SOURCE = """
%isa = jam_v1
%import host
%loc main src/main.c:10:5
pub @main:
    a0 = 1
    a1 = 2
%loc main src/main.c:11
    a0 = a0 + a1
%loc main src/main.c:20:3 -> "core::ops::add" "src/a b.h":3:7 -> helper src/h.h:99
    a0 = a0 + a1
%loc main src/main.c:9
    ret
%loc
pub @nothing:
    ret
%loc fault src/fault.c:40:1
pub @trap:
    trap
pub @store:
%loc fault src/fault.c:41
    u32 [a0] = a1
    ret
pub @spin:
%loc spin src/spin.rs:7
    jump @spin
pub @call_host:
%loc app::run src/app.rs:3 -> app::inner src/app.rs:8:2
    ecalli 0
    ret
"""
PROGRAM = vmcore.Program.from_bytes(assemble(SOURCE))


def _frames(loc):
    return [(f.function, f.path, f.line, f.column, f.inlined) for f in loc.frames]


def _pcs(program):
    return [ins[0] for ins in _engine.instructions(program.isa_index, program.code, program.bitmask)]


def _debug_sections(blob: bytes):
    """{section id: (payload offset, payload length)} of a .polkavm blob."""
    found, pos = {}, 13
    while blob[pos]:
        size, n = _engine.read_varint(blob, pos + 1)
        found[blob[pos]] = (pos + 1 + n, size)
        pos += 1 + n + size
    return found


def test_source_location_round_trips_through_the_assembler():
    pcs = _pcs(PROGRAM)
    main = PROGRAM.exports["main"]
    loc = PROGRAM.source_location(main)
    assert (loc.function, loc.path, loc.line, loc.column) == ("main", "src/main.c", 10, 5)
    assert loc.start == main and loc.end == pcs[2] and len(loc.frames) == 1 and not loc.frames[0].inlined
    assert str(loc) == "main at src/main.c:10:5"
    assert _frames(PROGRAM.source_location(pcs[2])) == [("main", "src/main.c", 11, None, False)]
    inlined = PROGRAM.source_location(pcs[3])
    assert _frames(inlined) == [("main", "src/main.c", 20, 3, False), ("core::ops::add", "src/a b.h", 3, 7, True),
                                ("helper", "src/h.h", 99, None, True)]
    assert (inlined.function, inlined.line) == ("helper", 99)
    assert [e[0] for e in inlined.entries] == ["enter", "call", "enter", "call", "enter", "line"]
    assert _frames(PROGRAM.source_location(pcs[4])) == [("main", "src/main.c", 9, None, False)]  # SubLine
    assert PROGRAM.source_location(PROGRAM.exports["nothing"]) is None        # after a bare %loc
    assert PROGRAM.source_location(len(PROGRAM.code) + 100) is None
    assert PROGRAM.source_location(-1) is None and PROGRAM.source_location(2**40) is None
    with pytest.raises(TypeError, match="pc must be an int"):
        PROGRAM.source_location("0")
    app = PROGRAM.source_location(PROGRAM.exports["call_host"])
    assert _frames(app) == [("app::run", "src/app.rs", 3, None, False), ("app::inner", "src/app.rs", 8, 2, True)]


def test_no_debug_info():
    plain = vmcore.Program.from_bytes(assemble("pub @main:\n    trap\n"))
    assert not plain.has_debug_info and not plain.debug_info
    assert plain.source_location(0) is None
    raw = vmcore.Program.from_raw_code(b"\x00\x00\x01\x00\x01")
    assert not raw.has_debug_info and raw.source_location(0) is None
    assert PROGRAM.has_debug_info and PROGRAM.debug_info


def test_debug_info_is_decoded_lazily_and_cached():
    program = vmcore.Program.from_bytes(assemble(SOURCE))
    assert not program._cache._debug                         # loading never looks at it
    first = program.source_location(0)
    assert program.debug_info is program.debug_info
    assert program.source_location(0) == first
    copy = pickle.loads(pickle.dumps(program))               # the sections travel, the cache does not
    assert not copy._cache._debug and copy.source_location(0) == first


def test_encoder_and_decoder_agree_on_random_regions():
    rng = random.Random(18)
    names = [None, "f", "ns::g", "<T as Tr>::h", "ünï", "a b"]
    paths = [None, "a.c", "dir/b.rs", "c d.h"]
    for _ in range(60):
        regions, pc = [], 0
        for _ in range(rng.randrange(1, 30)):
            size = rng.randrange(1, 300)
            frames = []
            for _ in range(rng.randrange(0, 9)):
                path = rng.choice(paths)   # a line needs a path, a column a line (as in PolkaVM)
                line = rng.choice([None, 1, 2, 3, 1000, 2**31]) if path else None
                frames.append((rng.choice(names), path, line, rng.choice([None, 1, 80]) if line else None))
            frames = tuple(frames)
            regions.append((pc, pc + size, frames))
            pc += size + rng.choice([0, 0, 0, 5])
        sections = encode_sections(regions)
        info = debuginfo.DebugInfo([(0, s) for s in sections])
        for start, end, frames in regions:
            for at in {start, end - 1, (start + end) // 2}:
                loc = info.location(at)
                if not frames:
                    assert loc is None
                    continue
                assert loc.entries == entries_of(frames)
                want = [(fn, path, line, column) for fn, path, line, column in frames]
                got = [(f.function, f.path, f.line, f.column) for f in loc.frames]
                assert got == want and (loc.start, loc.end) == (start, end)


def test_loc_syntax_round_trips():
    for text in ["%loc main a.c", "%loc main a.c:1", "%loc main a.c:1:2 -> g b.h:3",
                 '%loc "a b" "p q.c":4:5', '%loc ? ?', '%loc "->" "x:12"', "%loc"]:
        assert loc_text(parse_loc(text[4:])) == text
    for bad in ["main", "main a.c:0", "f a.c -> g", '"unterminated a.c', "f a.c:99999999999", "f ?:3"]:
        with pytest.raises(ValueError):
            parse_loc(bad)
    with pytest.raises(AsmError, match="line 2: %loc"):
        assemble("pub @main:\n%loc main\n    trap\n")
    with pytest.raises(AsmError, match="9 frames; the debug info holds at most 8"):
        assemble("%loc " + " -> ".join(["f a.c:1"] * 9) + "\npub @main:\n    trap\n")


# ---------------------------------------------------------------- guest errors

def test_guest_errors_carry_a_guest_traceback(mode):
    sb = mode.sandbox(PROGRAM, gas=10_000)
    with pytest.raises(vmcore.Trap) as trap:
        sb.call("trap")
    (frame,) = trap.value.guest_traceback
    assert (frame.pc, frame.function, frame.path, frame.line, frame.column) == (trap.value.pc, "fault",
                                                                               "src/fault.c", 40, 1)
    assert str(frame) == f"pc {frame.pc} in fault at src/fault.c:40:1"
    text = debuginfo.format_guest_traceback(trap.value)
    assert text.splitlines() == ["Guest traceback (most recent frame last):", f"  {frame}"]
    with pytest.raises(vmcore.PageFault) as fault:
        sb.call("store", 0x7000_0000, 1)
    assert [(f.function, f.line) for f in fault.value.guest_traceback] == [("fault", 41)]
    with pytest.raises(vmcore.OutOfGas) as gas:
        sb.call("spin")
    assert [(f.function, f.path, f.line) for f in gas.value.guest_traceback] == [("spin", "src/spin.rs", 7)]
    sb.gas = 10_000
    with pytest.raises(vmcore.HostcallError) as missing:
        sb.call("call_host")
    assert [(f.function, f.inlined) for f in missing.value.guest_traceback] == [("app::run", False),
                                                                               ("app::inner", True)]

    def boom(caller):
        raise RuntimeError("no")
    sb.register_hostcall("host", boom)
    with pytest.raises(vmcore.HostcallError) as raised:
        sb.call("call_host")
    assert raised.value.guest_traceback == missing.value.guest_traceback
    back = pickle.loads(pickle.dumps(raised.value))
    assert back.guest_traceback == raised.value.guest_traceback


def test_traceback_without_debug_info_is_the_pc(mode):
    sb = mode.sandbox(vmcore.Program.from_bytes(assemble("pub @main:\n    a0 = 1\n    trap\n")))
    with pytest.raises(vmcore.Trap) as e:
        sb.call("main")
    assert e.value.guest_traceback == (debuginfo.SourceFrame(e.value.pc),)
    assert str(e.value.guest_traceback[0]) == f"pc {e.value.pc}"
    assert vmcore.ProgramError("x").guest_traceback == ()     # not a guest's error


# ---------------------------------------------------------------- malformed debug info

def _with_payload(blob: bytes, sid: int, payload: bytes) -> bytes:
    """``blob`` with debug section ``sid`` replaced (same container otherwise)."""
    offset, size = _debug_sections(blob)[sid]
    head = blob[:offset - 1 - len(_engine.write_varint(size))]
    out = bytearray(head + bytes((sid,)) + _engine.write_varint(len(payload)) + payload + blob[offset + size:])
    out[5:13] = len(out).to_bytes(8, "little")
    return bytes(out)


BLOB = assemble(SOURCE)
STRINGS, PROGRAMS, RANGES = 128, 129, 130


@pytest.mark.parametrize("sid,payload,message", [
    (PROGRAMS, b"\x02\x00", "version 2"),
    (RANGES, b"\x00" * 13, "not a multiple of 12"),
    (PROGRAMS, b"\x01\x0a\x01\x07\x7f\x0e\x00", "not a string"),   # depth 1, SetPath to a bad offset
    (PROGRAMS, b"\x01\x63", "unknown debug line program opcode 99"),
    (PROGRAMS, b"\x01\x0a\x01", "runs past the end"),
    (PROGRAMS, b"\x01\x0f\xff", "malformed varint"),
    (STRINGS, b"\x00\x02\xff\xfe", "not valid UTF-8"),
], ids=["version", "ranges-size", "string-offset", "opcode", "truncated", "varint", "utf8"])
def test_malformed_debug_info_is_a_program_error_on_use(sid, payload, message):
    blob = _with_payload(BLOB, sid, payload)
    if sid == STRINGS:  # point the first function name at the bad string
        blob = _with_payload(blob, PROGRAMS, b"\x01\x0a\x01\x06\x01\x0e\x00")
        blob = _with_payload(blob, RANGES, struct.pack("<III", 0, 1, 1))
    program = vmcore.Program.from_bytes(blob)                   # loads
    assert program.exports == PROGRAM.exports
    with pytest.raises(vmcore.ProgramError, match=message) as e:
        program.source_location(0)
    assert e.value.offset is not None and 0 <= e.value.offset <= len(blob)
    sb = vmcore.Sandbox(program)                                # runs
    assert sb.call("nothing") is not None
    with pytest.raises(vmcore.Trap) as trap:
        sb.call("trap")
    assert trap.value.guest_traceback in ((debuginfo.SourceFrame(trap.value.pc),),
                                          PROGRAM.source_location(trap.value.pc).frames)
    assert "// debug info: " in disassemble(program, source=True)


def test_mutated_debug_sections_never_crash():
    rng = random.Random(1818)
    spans = [span for sid, span in sorted(_debug_sections(BLOB).items()) if sid >= 128]
    pcs = _pcs(PROGRAM) + [len(PROGRAM.code), 2**32 - 1]
    outcomes = {"ok": 0, "error": 0}
    for _ in range(300):
        blob = bytearray(BLOB)
        for _ in range(rng.randrange(1, 6)):
            offset, size = rng.choice(spans)
            blob[offset + rng.randrange(size)] = rng.choice([0, 1, 0x7f, 0x80, 0xff, rng.randrange(256)])
        program = vmcore.Program.from_bytes(bytes(blob))
        for pc in pcs:
            try:
                found = program.source_location(pc)
            except vmcore.ProgramError as e:
                assert e.offset is not None
                outcomes["error"] += 1
            else:
                assert found is None or isinstance(found, debuginfo.SourceLocation)
                outcomes["ok"] += 1
        assert len(debuginfo.guest_traceback(program.debug_info, pcs[3])) >= 1
        disassemble(program, source=True)
    assert outcomes["ok"] and outcomes["error"]


def test_a_broken_section_container_is_still_refused_at_load():
    offset, size = _debug_sections(BLOB)[RANGES]
    blob = bytearray(BLOB)
    blob[offset - 1] = 0x7f   # the ranges' length now runs past the end of the blob
    with pytest.raises(vmcore.ProgramError):
        vmcore.Program.from_bytes(bytes(blob))


# ---------------------------------------------------------------- disasm --source

def test_disasm_source_interleaves_and_reassembles(tmp_path, capsys):
    text = disassemble(PROGRAM, source=True)
    lines = text.splitlines()
    at = lines.index("pub @main:")
    assert lines[at + 1] == "%loc main src/main.c:10:5"
    assert '%loc main src/main.c:20:3 -> core::ops::add "src/a b.h":3:7 -> helper src/h.h:99' in lines
    assert lines.count("%loc main src/main.c:10:5") == 1           # only where it changes
    again = vmcore.Program.from_bytes(assemble(text))
    assert again.code == PROGRAM.code
    for pc in _pcs(PROGRAM):
        a, b = PROGRAM.source_location(pc), again.source_location(pc)
        assert (a and a.frames) == (b and b.frames)
    assert "%loc" not in disassemble(PROGRAM)

    path = tmp_path / "p.polkavm"
    path.write_bytes(BLOB)
    assert disasm_main([str(path), "--source"]) == 0
    captured = capsys.readouterr()
    assert captured.out == text and captured.err == ""
    assert disasm_main([str(path)]) == 0
    assert "without --source" in capsys.readouterr().err
    plain = tmp_path / "plain.polkavm"
    plain.write_bytes(assemble("pub @main:\n    trap\n"))
    assert disasm_main([str(plain), "--source"]) == 0
    assert "no debug info" in capsys.readouterr().err


# ---------------------------------------------------------------- real programs

def _real(name: str, env: str):
    path = os.environ.get(env)
    if not path and os.environ.get("VMCORE_SHARED"):
        path = str(Path(os.environ["VMCORE_SHARED"]) / "programs" / "real" / f"{name}.polkavm")
    if not path or not os.path.exists(path):
        pytest.skip(f"no {name}.polkavm (set ${env} or VMCORE_SHARED)")
    return vmcore.Program.load(path), path


def test_doom_is_stripped():
    # PolkaVM's DOOM ROM carries no debug sections: no locations, bare-pc tracebacks.
    doom, path = _real("doom", "VMCORE_DOOM")
    assert not doom.has_debug_info
    assert doom.source_location(doom.exports["ext_initialize"]) is None
    assert debuginfo.guest_traceback(doom.debug_info, 1467) == (debuginfo.SourceFrame(1467),)


def test_quake_debug_info(capsys):
    quake, path = _real("quake", "VMCORE_QUAKE")
    assert quake.has_debug_info
    start = quake.source_location(quake.exports["_pvm_start"])
    assert (start.function, start.path.rsplit("/", 3)[-3:], start.line, start.column) == \
        ("_start_c", ["musl", "crt", "crt1.c"], 16, 13)
    assert start.entries[0][0] == "enter" and start.entries[0][3] == 14    # the declaration line
    deep = quake.source_location(66609)
    assert [(f.function, f.path.rsplit("/", 1)[-1] if f.path else None, f.line, f.column) for f in deep.frames] == [
        ("CL_AddEntities", "cl_main.c", 463, 5), ("CL_VoorTrail", "cl_effects.c", 755, 2),
        ("__subsf3", None, None, None)]
    pcs = _pcs(quake)
    covered = sum(quake.source_location(pc) is not None for pc in pcs[::50])
    assert covered >= 0.99 * len(pcs[::50])
    assert disasm_main([path, "--source"]) == 0
    out = capsys.readouterr().out
    assert "%loc _start_c " in out and " -> __libc_start_main " in out


def test_cli_run_prints_the_guest_traceback(tmp_path, capsys):
    from vmcore.__main__ import main as cli
    import json
    path = tmp_path / "p.polkavm"
    path.write_bytes(BLOB)
    assert cli(["run", str(path), "trap"]) != 0
    err = capsys.readouterr().err.splitlines()
    pc = PROGRAM.exports["trap"]
    assert err[:2] == ["Guest traceback (most recent frame last):", f"  pc {pc} in fault at src/fault.c:40:1"]
    assert err[2].startswith("vmcore: error: Trap: ")
    assert cli(["run", str(path), "trap", "--json"]) != 0
    record = json.loads(capsys.readouterr().out)
    assert record["guest_traceback"] == [f"pc {pc} in fault at src/fault.c:40:1"]
