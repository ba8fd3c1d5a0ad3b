"""Gas cost models (the C side is include/vmcore/gas.h).

A model says what a basic block costs; both engines charge a block's cost
when the block is entered, computed once per module.

* ``"naive"``: 1 per instruction (the implicit trap at the end of the code
  included).  What the JAM v0.4 test vectors use, and PolkaVM's own default
  (its ``Config`` falls back to the naive model unless a cost model is set).
* ``"full"``: the Gray Paper 0.8 model, PolkaVM 0.35's
  ``CostModelKind::Full(CacheModel::L2Hit)``: each block costs the cycles a
  simulation of an out-of-order pipeline needs for it, with loads costing
  25 cycles (an L2 cache hit).  What the JAM v0.5 vectors use, and vmcore's
  default for ``jam_v1`` programs.
* ``"full-l1"`` / ``"full-l3"``: the same simulation with PolkaVM's other
  cache models (loads cost 4 / 37 cycles).  ``"full-l2"`` is ``"full"``;
  PolkaVM's ``POLKAVM_DEFAULT_COST_MODEL`` spellings ``"full-l1-hit"``,
  ``"full-l2-hit"``, ``"full-l3-hit"`` are accepted too.

``default_for(isa)``: ``"full"`` for ``jam_v1``, ``"naive"`` for every
other instruction set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from vmcore import _engine

__all__ = ["GasModel", "NAIVE", "FULL", "FULL_L1", "FULL_L3", "MODEL_NAMES", "resolve", "default_for"]


# eq=False: the four models below are the only instances, so identity is
# equality, and hashing one (every cache key of a module has one) costs no
# Python-level __hash__.
@dataclass(frozen=True, eq=False)
class GasModel:
    """A resolved cost model: its canonical name and the C parameters."""

    name: str
    kind: int
    memory_access_cost: int

    @property
    def is_full(self) -> bool:
        return self.kind == _engine.GAS_FULL

    def __str__(self) -> str:
        return self.name


NAIVE = GasModel("naive", _engine.GAS_NAIVE, 0)
FULL = GasModel("full", _engine.GAS_FULL, _engine.GAS_CACHE_L2_HIT)
FULL_L1 = GasModel("full-l1", _engine.GAS_FULL, _engine.GAS_CACHE_L1_HIT)
FULL_L3 = GasModel("full-l3", _engine.GAS_FULL, _engine.GAS_CACHE_L3_HIT)

_BY_NAME = {
    "naive": NAIVE,
    "full": FULL, "full-l2": FULL, "full-l2-hit": FULL,
    "full-l1": FULL_L1, "full-l1-hit": FULL_L1,
    "full-l3": FULL_L3, "full-l3-hit": FULL_L3,
}
#: every accepted spelling
MODEL_NAMES = tuple(_BY_NAME)


def default_for(isa: str) -> GasModel:
    """The model a program of instruction set `isa` gets by default."""
    return FULL if isa == "jam_v1" else NAIVE


def resolve(model: Union[None, str, GasModel], isa: Optional[str] = None) -> GasModel:
    """A model from its name (or None: the default for `isa`)."""
    if model is None:
        return default_for(isa or "")
    if isinstance(model, GasModel):
        return model
    if not isinstance(model, str):
        raise TypeError(f"gas_model must be a model name or None, got {type(model).__name__}")
    found = _BY_NAME.get(model.strip().lower())
    if found is None:
        raise ValueError(f"unknown gas model {model!r} (known: {', '.join(MODEL_NAMES)})")
    return found
