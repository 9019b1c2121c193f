"""Compiles examples/wasm/main.wat to main.wasm with the `wasmtime` package (pip install wasmtime).

Any WASI preview 1 toolchain works as well, e.g. `cargo build --target wasm32-wasip1` or
`wat2wasm main.wat` from wabt.
"""

from pathlib import Path

import wasmtime

here = Path(__file__).resolve().parent
(here / "main.wasm").write_bytes(wasmtime.wat2wasm((here / "main.wat").read_text()))
print(here / "main.wasm")
