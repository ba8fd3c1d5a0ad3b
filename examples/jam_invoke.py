"""vmcore as a JAM PVM: build a GP 0.8 standard program, serve its host
calls (fetch from the embedder; gas and grow_heap built in) and run the
marshalling invocation Psi_M, printing the status, output and gas."""
import vmcore
from vmcore import jam
from vmcore.asm import assemble

# Sums the argument bytes plus an 8-byte "salt" fetched from the host into a
# page it grows the heap for, and halts with that u64 as its output.
GUEST = """
%isa = jam_v1
pub @main:
    s0 = a0
    s1 = a1
    a0 = 0x20000
    a1 = 0
    a2 = 8
    a3 = 0
    ecalli 2
    a4 = 0x20000
    t0 = u64 [a4]
    jump @done if s1 == 0
@loop:
    t1 = u8 [s0]
    t0 = t0 + t1
    s0 = s0 + 1
    s1 = s1 - 1
    jump @loop if s1 != 0
@done:
    a0 = 0
    ecalli 1
    s0 = a0
    a0 = a0 + 1
    ecalli 1
    a1 = s0 << 12
    u64 [a1] = t0
    a0 = a1
    a1 = 8
    ret
"""


def main() -> int:
    code = jam.encode_code_blob(vmcore.Program.from_bytes(assemble(GUEST)))
    blob = jam.encode_standard_program(code, rw_data=bytes(8), stack_size=4096)
    program = jam.StandardProgram.parse(blob)   # parse once, invoke many times

    host = jam.HostCalls()

    @host.function("fetch")                      # GP 0.8 host call 2
    def fetch(call: jam.HostCallState) -> None:
        salt = (1000).to_bytes(8, "little") if call.regs[10] == 0 else None
        call.reply(salt, call.regs[7], call.regs[8], call.regs[9])

    args = bytes(range(1, 11))
    result = jam.invoke(program, 0, 100_000, args, host)
    assert result.output is not None           # None unless the guest halted
    total = int.from_bytes(result.output, "little")
    print(f"status {result.status.name}, output {total}, gas used {result.gas_used} "
          f"({result.gas_model} model), gas left {result.gas_left}")
    assert result.status is jam.Status.HALT and total == 1000 + sum(args)

    starved = jam.invoke(program, 0, 50, args, host)
    print(f"with 50 gas: {starved.status.name}, gas used {starved.gas_used}")
    assert starved.status is jam.Status.OOG
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
