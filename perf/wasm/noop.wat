;; Host-to-guest call latency, like vmcore/data/noop.asm: an export that
;; returns at once.
(module
  (func (export "noop")))
