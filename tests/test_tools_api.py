"""The public entry points the tools (vectors, JAM, crosscheck) use:
GuestMemory.protect/access and Sandbox.jump, on every backend."""
import pytest

import vmcore
from vmcore import abi, asm, interrupts
from vmcore.errors import MemoryAccessError, Trap

MODES = [("inline", "interpreter", "inline"), ("process", "interpreter", "process"),
         ("compiler", "compiler", "process")]

PROG = vmcore.Program.from_bytes(asm.assemble("""
%isa = latest64
%rw_data_size = 4096
%stack_size = 4096
pub @load:
    a0 = u8 [a0]
    ret
pub @store:
    u8 [a0] = a1
    ret
"""))


@pytest.fixture(params=MODES, ids=[m[0] for m in MODES])
def sb(request):
    _, backend, isolation = request.param
    with vmcore.Sandbox(PROG, backend=backend, isolation=isolation, gas=10_000) as sandbox:
        yield sandbox


def rw(sb):
    return sb.memory_map.rw_data_address


def test_protect_changes_what_host_and_guest_may_do_and_keeps_the_bytes(sb):
    address = rw(sb)
    sb.memory.write(address, b"\x2a")
    assert sb.memory.access(address) == "write"
    sb.memory.protect(address, 1, "read")
    assert sb.memory.access(address) == "read"
    assert not sb.memory.is_accessible(address, 1, writable=True)
    assert sb.call("load", address) == 0x2A
    with pytest.raises(vmcore.PageFault) as fault:
        sb.call("store", address, 1)
    assert fault.value.address == address
    sb.memory.protect(address, 1, abi.PERM_NONE)
    assert sb.memory.access(address) == "none"
    with pytest.raises(MemoryAccessError):
        sb.memory.read(address, 1)
    with pytest.raises(vmcore.PageFault):
        sb.call("load", address)
    sb.memory.protect(address, 1, "write")
    assert sb.memory.read(address, 1) == b"\x2a"
    sb.call("store", address, 7)
    assert sb.memory.read(address, 1) == b"\x07"


def test_protect_can_map_a_page_the_layout_left_out(sb):
    address = 0x7000_0000
    assert sb.memory.access(address) == "none"
    sb.memory.protect(address, 1, "write")
    assert sb.memory.read(address, 4) == bytes(4)
    assert sb.call("store", address, 5) == address  # a0 is untouched by the store
    assert sb.memory.read(address, 1) == b"\x05"


@pytest.mark.parametrize("mode", MODES, ids=[m[0] for m in MODES])
def test_a_recycled_guest_forgets_every_page_protect_opened(mode):
    """protect of a few bytes opens their whole pages; the engine records
    those pages, so a closed sandbox's scrub wipes and closes all of each."""
    _, backend, isolation = mode
    pool = vmcore.SandboxPool(1) if isolation == "process" else None
    options = {"pool": pool} if pool is not None else {}
    page = 0x7000_0000
    first = vmcore.Sandbox(PROG, backend=backend, isolation=isolation, **options)
    guest = first._guest
    first.memory.protect(page + 100, 2, "write")  # not page aligned, not a page long
    size = first.memory_map.page_size
    first.memory.write(page, b"\xaa")
    first.memory.write(page + size - 1, b"\xbb")
    first.close()
    second = vmcore.Sandbox(PROG, backend=backend, isolation=isolation, **options)
    if pool is None:
        assert second._guest is guest  # really the recycled instance
    else:
        assert pool.reused == 1  # really the recycled sandbox process
    assert second.memory.access(page) == second.memory.access(page + size - 1) == "none"
    second.memory.protect(page, size, "read")
    assert second.memory.read(page, size) == bytes(size)
    second.close()
    if pool is not None:
        pool.close()


def test_protect_and_access_refuse_bad_arguments(sb):
    with pytest.raises(ValueError):
        sb.memory.protect(rw(sb), 1, "execute")
    with pytest.raises(ValueError):
        sb.memory.protect(rw(sb), 1, 99)
    with pytest.raises(MemoryAccessError):
        sb.memory.protect(0xFFFF_F000, 0x2000, "read")
    with pytest.raises(MemoryAccessError):
        sb.memory.access(1 << 32)
    with pytest.raises(TypeError):
        sb.memory.access("0")


def test_jump_keeps_the_registers(sb):
    address = rw(sb)
    sb.memory.write(address, b"\x63")
    sb.prepare_call("load", 0)
    sb.regs["a0"] = address  # a change after prepare_call: jump must not undo it
    sb.jump(PROG.export_pc("load"))
    assert sb.regs["a0"] == address
    assert isinstance(sb.run(), interrupts.Finished)
    assert sb.regs["a0"] == 0x63


def test_jump_reports_the_entry_refusals(sb):
    with pytest.raises(Trap):
        sb.jump(PROG.export_pc("load") + 1)  # inside an instruction
    with pytest.raises(TypeError):
        sb.jump(-1)
