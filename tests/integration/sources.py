"""Handler sources used by the integration tests, one per runtime and behaviour."""

from __future__ import annotations

import base64

PY_ECHO = "async def handler(input, env):\n    return {'echo': input}\n"
NODE_ECHO = "module.exports = async function handler({ input, env }) { return { echo: input } }\n"
DENO_ECHO = (
    "export default async function handler({ input }: { input: unknown }) {\n"
    "  return { echo: input }\n}\n"
)
SHELL_ECHO = "#!/bin/bash\njq -c '{echo: .}' > \"$AVA_RESULT\"\n"
WASM_WAT = r"""
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "{\"echo\":\"wasm\"}\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 16))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))
"""


def wasm_echo_b64() -> str:
    import wasmtime

    return base64.b64encode(wasmtime.wat2wasm(WASM_WAT)).decode()


PY_RAISE = "def handler(input, env):\n    raise ValueError('boom: ' + input['why'])\n"
PY_FLAKY = (
    "def handler(input, env):\n"
    "    if int(env['AVA_ATTEMPT']) < 3:\n"
    "        raise RuntimeError('flaky attempt ' + env['AVA_ATTEMPT'])\n"
    "    return {'attempt': int(env['AVA_ATTEMPT'])}\n"
)
PY_SLEEP = (
    "import time\n"
    "def handler(input, env):\n"
    "    print('sleeping', flush=True)\n"
    "    time.sleep(float(input.get('s', 60)))\n"
    "    return {'slept': True}\n"
)
PY_STREAM = (
    "import time\n"
    "def handler(input, env):\n"
    "    print('first line', flush=True)\n"
    "    time.sleep(4)\n"
    "    print('last line', flush=True)\n"
    "    return 'done'\n"
)
PY_FORK_BOMB = (
    "import os\n"
    "def handler(input, env):\n"
    "    while True:\n"
    "        try:\n"
    "            os.fork()\n"
    "        except OSError:\n"
    "            pass\n"
)
PY_MEMORY_HOG = (
    "def handler(input, env):\n"
    "    hog = []\n"
    "    while True:\n"
    "        hog.append(b'x' * (16 * 1024 * 1024))\n"
)
PY_FLOOD = (
    "import sys\n"
    "def handler(input, env):\n"
    "    line = 'y' * 1023 + '\\n'\n"
    "    chunk = line * 1024\n"
    "    mib = int(input.get('mib', 50))\n"
    "    for _ in range(mib):\n"
    "        sys.stdout.write(chunk)\n"
    "    sys.stdout.flush()\n"
    "    return {'printed_mib': mib}\n"
)
PY_ENV_PROBE = (
    "import os\n"
    "def handler(input, env):\n"
    "    return {'uid': os.getuid(), 'cfg': env.get('GREETING'), 'os_cfg': os.environ.get('GREETING')}\n"
)
