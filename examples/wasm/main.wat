;; AVA wasm example: a WASI preview 1 module that wraps its input, {"received": <input>}.
;; The input JSON arrives on stdin; the last line on stdout, being JSON, is the result;
;; the line on stderr is a log line. Build main.wasm with:  python3 examples/wasm/build.py
(module
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 64)
  ;; 0..16: iovec scratch; 16: bytes read; 20: bytes written; 256..: text; 65536..: the input
  (data (i32.const 256) "{\"received\":")
  (data (i32.const 272) "}\n")
  (data (i32.const 288) "wrapping the input\n")
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 20))))
  (func (export "_start")
    (local $end i32) (local $n i32)
    (call $write (i32.const 2) (i32.const 288) (i32.const 19))
    (local.set $end (i32.const 65536))
    (block $done
      (loop $more
        (i32.store (i32.const 8) (local.get $end))
        (i32.store (i32.const 12) (i32.const 65536))
        (drop (call $fd_read (i32.const 0) (i32.const 8) (i32.const 1) (i32.const 16)))
        (local.set $n (i32.load (i32.const 16)))
        (br_if $done (i32.eqz (local.get $n)))
        (local.set $end (i32.add (local.get $end) (local.get $n)))
        (br $more)))
    (call $write (i32.const 1) (i32.const 256) (i32.const 12))
    (call $write (i32.const 1) (i32.const 65536) (i32.sub (local.get $end) (i32.const 65536)))
    (call $write (i32.const 1) (i32.const 272) (i32.const 2))))
