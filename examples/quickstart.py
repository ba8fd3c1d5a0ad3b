"""The README example, runnable: assemble a guest, serve its import from
Python, call an export."""
import vmcore
from vmcore.asm import assemble

GUEST = """
%isa = jam_v1
%import get_third_number
pub @add_numbers:
    s0 = a0 + a1
    ecalli 0
    a0 = a0 + s0
    ret
"""


def main() -> int:
    program = vmcore.Program.from_bytes(assemble(GUEST))
    sb = vmcore.Sandbox(program, gas=10_000_000)

    @sb.hostcall("get_third_number")
    def get_third_number(caller: vmcore.Caller) -> int:
        return 100

    result = sb.call("add_numbers", 1, 10)
    gas_left = sb.gas  # an int: metering is on (gas=None would make it None)
    assert gas_left is not None
    print(f"add_numbers(1, 10) = {result}, gas used: {10_000_000 - gas_left}")
    assert result == 111
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
