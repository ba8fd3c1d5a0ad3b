"""JAM PVM test vectors v0.5 (Gray Paper 0.8; PolkaVM's spectool format,
``pvm-vectors-v0.5/schema.asn``): ``name, initial-pc, initial-gas,
program, steps, block-gas-costs``.

The program is a jam_v1 code blob, metered with the full cost model
(L2-hit loads) unless the vector says otherwise.  Steps run in order on one
instance with 4 KiB pages: ``map`` (make pages accessible and zero them),
``write``,
``set-reg``, ``run`` (the first starts at initial-pc, the next ones resume
where the guest stopped: after an ecalli, retrying a page fault or an
out-of-gas block) and ``assert`` (status, pc, gas, registers,
page-fault address, hostcall, and every mapped page's bytes).
``block-gas-costs`` is checked against the costs the engine itself charges
(read back from its threaded code or native code)."""
from __future__ import annotations

from typing import Dict, List, Optional, Tuple

from vmcore import _engine, abi, gas as _gas
from vmcore.program import Program

PAGE_SIZE = abi.MIN_PAGE_SIZE  # the vectors' pages are 4 KiB
STATUS = {
    abi.EXIT_FINISHED: "halt",
    abi.EXIT_TRAP: "panic",
    abi.EXIT_ECALLI: "ecalli",
    abi.EXIT_OUT_OF_GAS: "out-of-gas",
    abi.EXIT_PAGEFAULT: "page-fault",
}


def is_v05(vector: dict) -> bool:
    return "steps" in vector and "initial-regs" not in vector


def _open(program: Program, backend: str, isolation: str, model):
    """(instance, module, cleanup) for one configuration."""
    if isolation == "process":
        from vmcore.pool import SandboxPool, _shared_module
        pool = SandboxPool.default()
        module = _shared_module(program, True, False, backend == "compiler", model)
        inst = _engine.Process(pool.acquire(), module, PAGE_SIZE)

        def cleanup(pages):
            reusable = inst.zygote is not None
            if reusable:
                inst.scrub([(p, PAGE_SIZE) for p in sorted(set(pages))])
            zygote = inst.detach()
            if zygote is not None:
                pool.release(zygote, reusable)
        return inst, module, cleanup
    from vmcore.pool import _compiled
    module = _compiled(program, True, False, model)
    return _engine.Instance(module, PAGE_SIZE), module, lambda pages: None


def run_vector_v05(vector: dict, *, backend: str = "interpreter", isolation: str = "inline",
                   gas_model: Optional[str] = None) -> List[str]:
    """Run a v0.5 vector; the differences from its expectations ([] = pass)."""
    from vmcore.vectors import check_configuration
    check_configuration(backend, isolation)
    program = Program.from_raw_code(bytes(vector["program"]), isa=vector.get("isa", "jam_v1"))
    model = _gas.resolve(gas_model or vector.get("gas-model") or "full", program.isa)
    inst, module, cleanup = _open(program, backend, isolation, model)
    pages: List[int] = []
    diffs: List[str] = []
    try:
        if "block-gas-costs" in vector:
            diffs += _check_block_costs(vector, program, module, model)
        inst.gas = int(vector["initial-gas"])
        started = False
        last: Optional[Tuple[str, Optional[int], Optional[int]]] = None
        for n, step in enumerate(vector["steps"]):
            (kind, arg), = step.items()
            if kind == "map":
                perm = abi.PERM_WRITE if arg["is-writable"] else abi.PERM_READ
                # mapping (again) gives fresh zeroed pages, as PolkaVM's zero_memory does
                inst.set_perms(arg["address"], arg["length"], abi.PERM_WRITE)
                inst.write(arg["address"], bytes(arg["length"]))
                inst.set_perms(arg["address"], arg["length"], perm)
                start = arg["address"] - arg["address"] % PAGE_SIZE
                pages.extend(range(start, arg["address"] + arg["length"], PAGE_SIZE))
            elif kind == "write":
                inst.write(arg["address"], bytes(arg["contents"]))
            elif kind == "set-reg":
                regs = inst.get_regs()
                regs[int(arg["reg"])] = int(arg["value"])
                inst.set_regs(regs)
            elif kind == "run":
                if not started:
                    started = True
                    rc = inst.set_pc(int(vector["initial-pc"]))
                    if rc == abi.ENTRY_NOT_AN_INSTRUCTION:
                        last = ("panic", None, None)
                        continue
                    if rc == abi.ENTRY_OUT_OF_GAS:
                        last = ("out-of-gas", None, None)
                        continue
                reason = inst.run()
                status = STATUS.get(reason, f"unexpected exit {reason}")
                last = (status, inst.arg if reason == abi.EXIT_PAGEFAULT else None,
                        inst.arg if reason == abi.EXIT_ECALLI else None)
            elif kind == "assert":
                diffs += [f"step {n}: {d}" for d in _compare(arg, inst, last, pages)]
            else:
                diffs.append(f"step {n}: unknown step {kind!r}")
    finally:
        cleanup(pages)
    return diffs


def _check_block_costs(vector: dict, program: Program, module, model) -> List[str]:
    charged: Dict[int, int] = dict(module.block_costs())
    diffs = []
    for entry in vector["block-gas-costs"]:
        pc, want = int(entry["pc"]), int(entry["cost"])
        got = charged.get(pc)
        if got != want:
            diffs.append(f"block-gas-costs[{pc}]: expected {want}, engine charges {got}")
    # the gas module's own listing (every block from offset 0 up to the first gap, as spectool lists them)
    listed = _engine.block_gas_costs(program.isa_index, program.code, program.bitmask, model.kind,
                                      model.memory_access_cost, True)
    want_list = [(int(e["pc"]), int(e["cost"])) for e in vector["block-gas-costs"]]
    if listed != want_list:
        diffs.append(f"block-gas-costs: expected {want_list}, the gas module lists {listed}")
    return diffs


def _compare(expected: dict, inst, last, pages) -> List[str]:
    diffs = []
    status = last[0] if last else None
    if expected.get("status") != status:
        diffs.append(f"status: expected {expected.get('status')}, got {status}")
    if "pc" in expected and inst.pc != expected["pc"]:
        diffs.append(f"pc: expected {expected['pc']}, got {inst.pc}")
    if "gas" in expected and inst.gas != expected["gas"]:
        diffs.append(f"gas: expected {expected['gas']}, got {inst.gas}")
    if "regs" in expected:
        for i, (want, got) in enumerate(zip(expected["regs"], inst.get_regs())):
            if int(want) != got:
                diffs.append(f"r{i}: expected {int(want):#x}, got {got:#x}")
    if "page-fault-address" in expected and (last is None or last[1] != expected["page-fault-address"]):
        diffs.append(f"page-fault address: expected {expected['page-fault-address']:#x}, got "
                     f"{'none' if last is None or last[1] is None else hex(last[1])}")
    if "hostcall" in expected and (last is None or last[2] != expected["hostcall"]):
        diffs.append(f"hostcall: expected {expected['hostcall']}, got {None if last is None else last[2]}")
    if "memory" in expected:
        want = {}
        for chunk in expected["memory"]:
            for i, byte in enumerate(chunk["contents"]):
                want[chunk["address"] + i] = byte
        for page in sorted(set(pages)):
            if inst.perm(page) == abi.PERM_NONE:
                continue
            data = inst.read(page, PAGE_SIZE)
            for i, byte in enumerate(data):
                w = want.pop(page + i, 0)
                if byte != w:
                    diffs.append(f"memory[{page + i:#x}]: expected {w:#04x}, got {byte:#04x}")
                    if len(diffs) > 40:
                        return diffs + ["..."]
        for address, byte in sorted(want.items()):
            if byte:
                diffs.append(f"memory[{address:#x}]: expected {byte:#04x}, but the page is not mapped")
                break
    return diffs
