;; A WAT method (with the host's prelude): adds one to the receiver's `count` slot
;; and answers it. Shared by the kernel's tests and the sandbox bench.
(data (i32.const 512) "count")
(func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32)
  (local $n i64)
  (local.set $n (i64.add (call $get_int (local.get $receiver) (i32.const 512) (i32.const 5)) (i64.const 1)))
  (drop (call $set_int (local.get $receiver) (i32.const 512) (i32.const 5) (local.get $n)))
  (call $ok_int (local.get $n)))
