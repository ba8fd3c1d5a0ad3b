;; Compute-bound loop, the same work as vmcore/data/sum.asm:
;;   main(n: i64) -> i64 = sum_{i=0}^{n-1} ((i*i) mod 1000000007), wrapping u64.
;; n = 100,000,000 gives 49991862417943034.
(module
  (func (export "main") (param $n i64) (result i64)
    (local $i i64) (local $acc i64)
    (if (i64.eqz (local.get $n)) (then (return (i64.const 0))))
    (loop $loop
      ;; t0 = a1 * a1; t0 = t0 %u a3; a2 = a2 + t0
      (local.set $acc
        (i64.add (local.get $acc)
          (i64.rem_u (i64.mul (local.get $i) (local.get $i)) (i64.const 1000000007))))
      ;; a1 = a1 + 1; jump @loop if a1 <u a0
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $loop (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $acc)))
