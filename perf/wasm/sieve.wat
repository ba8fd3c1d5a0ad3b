;; Sieve of Eratosthenes, the same work as vmcore/data/sieve.asm: one byte per
;; number in zero-initialised linear memory (256 pages = 16 MiB, like the
;; PolkaVM program's 16 MiB RW data section), 64-bit arithmetic as in the
;; PolkaVM registers.
;;   main(n: i64 (<= 16 MiB), base: i64) -> i64 = number of primes below n.
;; n = 16,000,000 gives 1031130.  Needs a fresh instance (zeroed memory) per run.
(module
  (memory (export "memory") 256 256)
  (func (export "main") (param $n i64) (param $base i64) (result i64)
    (local $i i64) (local $count i64) (local $j i64)
    (local.set $i (i64.const 2))
    (if (i64.ge_u (local.get $i) (local.get $n)) (then (return (i64.const 0))))
    (loop $outer
      (block $next
        ;; jump @next if u8 [base + i] != 0
        (br_if $next (i32.load8_u (i32.wrap_i64 (i64.add (local.get $base) (local.get $i)))))
        (local.set $count (i64.add (local.get $count) (i64.const 1)))
        (local.set $j (i64.mul (local.get $i) (local.get $i)))
        (br_if $next (i64.ge_u (local.get $j) (local.get $n)))
        (loop $inner
          (i32.store8 (i32.wrap_i64 (i64.add (local.get $base) (local.get $j))) (i32.const 1))
          (local.set $j (i64.add (local.get $j) (local.get $i)))
          (br_if $inner (i64.lt_u (local.get $j) (local.get $n)))))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br_if $outer (i64.lt_u (local.get $i) (local.get $n))))
    (local.get $count)))
