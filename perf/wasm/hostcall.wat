;; Host-call round trip, the same loop as vmcore/data/hostcall.asm: main(n)
;; calls the imported host function env.inc (no arguments, no result) n times.
(module
  (import "env" "inc" (func $inc))
  (func (export "main") (param $n i64)
    (loop $loop
      (call $inc)
      (local.set $n (i64.sub (local.get $n) (i64.const 1)))
      (br_if $loop (i64.ne (local.get $n) (i64.const 0))))))
