;; The batos WAT prelude. `batos plugin add FILE.wat` wraps an author's functions as
;;
;;   (module <prelude imports> <the author's text> <prelude definitions>)
;;
;; so the author writes only `$invoke` (and helpers or imports of their own, imports
;; first). The core-level contract, from the canonical ABI of
;; `invoke: func(receiver: object, args: list<value>) -> result<value, error>`:
;;
;;   (func $invoke (param $receiver i32) (param $args i32) (param $nargs i32) (result i32))
;;
;;   $receiver  the receiver's handle (own<object>)
;;   $args      address of $nargs values, 8 bytes each: (nodes address, node count)
;;   result     address of a 16-byte result: byte 0 is 0 for ok, 1 for error;
;;              ok: i32 nodes address at 4, i32 node count at 8;
;;              error: kind byte at 4 (0 bad-arguments .. 4 failed), message
;;              address at 8, length at 12.
;;   a node     32 bytes: kind byte at 0 (0 nil, 1 bool, 2 integer, 3 float, 4 text,
;;              5 bytes, 6 list, 7 map, 8 object, 9 blob, 10 method), payload at 8
;;              (integer: i64; text: address at 8, length at 12; object: handle at 8).
;;
;; The helpers below build and read that layout; `$invoke` usually ends with one of
;; `$ok_int`, `$ok_text`, `$ok_nil` or `$err`. Memory is a bump heap that is never
;; freed: every call runs in a fresh instance.

  (import "batos:uvm/types@0.1.0" "[method]object.slot" (func $object.slot (param i32 i32 i32 i32)))
  (import "batos:uvm/types@0.1.0" "[method]object.set-slot" (func $object.set-slot (param i32 i32 i32 i32 i32 i32)))
  (import "batos:uvm/types@0.1.0" "[method]object.send" (func $object.send (param i32 i32 i32 i32 i32 i32)))
  (import "batos:uvm/types@0.1.0" "[resource-drop]object" (func $object.drop (param i32)))
  (import "batos:uvm/log@0.1.0" "log" (func $log (param i32 i32 i32)))
;; @@AUTHOR@@
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))

  ;; The canonical ABI's allocator.
  (func $cabi_realloc (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32)
    (local $ptr i32)
    (if (i32.and (i32.ne (local.get $old) (i32.const 0)) (i32.le_u (local.get $size) (local.get $old_size)))
      (then (return (local.get $old))))
    (local.set $ptr (call $alloc (local.get $size) (local.get $align)))
    (if (i32.ne (local.get $old) (i32.const 0))
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (local.get $ptr))

  ;; $size bytes aligned to $align, growing memory as needed.
  (func $alloc (param $size i32) (param $align i32) (result i32)
    (local $ptr i32) (local $end i32)
    (local.set $ptr (i32.and
      (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
      (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
    (local.set $end (i32.add (local.get $ptr) (local.get $size)))
    (block $enough
      (loop $grow
        (br_if $enough (i32.le_u (local.get $end) (i32.mul (memory.size) (i32.const 65536))))
        (if (i32.eq (memory.grow (i32.const 1)) (i32.const -1)) (then unreachable))
        (br $grow)))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  ;; Address of the root node of argument $i (traps if there is no such argument).
  (func $arg_node (param $args i32) (param $nargs i32) (param $i i32) (result i32)
    (if (i32.ge_u (local.get $i) (local.get $nargs)) (then unreachable))
    (i32.load (i32.add (local.get $args) (i32.mul (local.get $i) (i32.const 8)))))

  ;; Argument $i as an integer (traps if it is not one).
  (func $arg_int (param $args i32) (param $nargs i32) (param $i i32) (result i64)
    (local $node i32)
    (local.set $node (call $arg_node (local.get $args) (local.get $nargs) (local.get $i)))
    (if (i32.ne (i32.load8_u (local.get $node)) (i32.const 2)) (then unreachable))
    (i64.load offset=8 (local.get $node)))

  ;; A fresh 16-byte result area.
  (func $result (param $tag i32) (result i32)
    (local $r i32)
    (local.set $r (call $alloc (i32.const 16) (i32.const 8)))
    (i32.store8 (local.get $r) (local.get $tag))
    (local.get $r))

  ;; ok(value) with a one-node value whose node is at $node.
  (func $ok_node (param $node i32) (result i32)
    (local $r i32)
    (local.set $r (call $result (i32.const 0)))
    (i32.store offset=4 (local.get $r) (local.get $node))
    (i32.store offset=8 (local.get $r) (i32.const 1))
    (local.get $r))

  (func $new_node (param $kind i32) (result i32)
    (local $n i32)
    (local.set $n (call $alloc (i32.const 32) (i32.const 8)))
    (i32.store8 (local.get $n) (local.get $kind))
    (local.get $n))

  ;; ok(integer)
  (func $ok_int (param $v i64) (result i32)
    (local $n i32)
    (local.set $n (call $new_node (i32.const 2)))
    (i64.store offset=8 (local.get $n) (local.get $v))
    (call $ok_node (local.get $n)))

  ;; ok(text at $ptr, $len bytes)
  (func $ok_text (param $ptr i32) (param $len i32) (result i32)
    (local $n i32)
    (local.set $n (call $new_node (i32.const 4)))
    (i32.store offset=8 (local.get $n) (local.get $ptr))
    (i32.store offset=12 (local.get $n) (local.get $len))
    (call $ok_node (local.get $n)))

  ;; ok(nil)
  (func $ok_nil (result i32)
    (call $ok_node (call $new_node (i32.const 0))))

  ;; error(failed, text at $ptr, $len bytes)
  (func $err (param $ptr i32) (param $len i32) (result i32)
    (local $r i32)
    (local.set $r (call $result (i32.const 1)))
    (i32.store8 offset=4 (local.get $r) (i32.const 4))
    (i32.store offset=8 (local.get $r) (local.get $ptr))
    (i32.store offset=12 (local.get $r) (local.get $len))
    (local.get $r))

  ;; Writes integer $v into slot (name at $ptr, $len bytes) of object $handle.
  ;; Returns 0 on success, 1 if the host refused.
  (func $set_int (param $handle i32) (param $ptr i32) (param $len i32) (param $v i64) (result i32)
    (local $n i32) (local $r i32)
    (local.set $n (call $new_node (i32.const 2)))
    (i64.store offset=8 (local.get $n) (local.get $v))
    (local.set $r (call $alloc (i32.const 16) (i32.const 4)))
    (call $object.set-slot (local.get $handle) (local.get $ptr) (local.get $len) (local.get $n) (i32.const 1) (local.get $r))
    (i32.load8_u (local.get $r)))

  ;; Reads slot (name at $ptr, $len bytes) of object $handle as an integer; traps if
  ;; it is missing or not an integer.
  (func $get_int (param $handle i32) (param $ptr i32) (param $len i32) (result i64)
    (local $r i32) (local $node i32)
    (local.set $r (call $alloc (i32.const 16) (i32.const 4)))
    (call $object.slot (local.get $handle) (local.get $ptr) (local.get $len) (local.get $r))
    (if (i32.ne (i32.load8_u (local.get $r)) (i32.const 0)) (then unreachable))
    (local.set $node (i32.load offset=4 (local.get $r)))
    (if (i32.ne (i32.load8_u (local.get $node)) (i32.const 2)) (then unreachable))
    (i64.load offset=8 (local.get $node)))

  ;; Logs text at $ptr, $len bytes at info level.
  (func $log_info (param $ptr i32) (param $len i32)
    (call $log (i32.const 1) (local.get $ptr) (local.get $len)))

  (export "invoke" (func $invoke))
