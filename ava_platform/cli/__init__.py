"""The `ava` command line: `main` is the console script (`ava = "ava_platform.cli:main"`).

main.py          the root command, its connection options; registers every group
config.py        where the server and identity come from (flags, env, profile file)
output.py        tables, --json, exit codes, errors
workers.py       ava workers …        jobs.py       ava jobs …
schedules.py     ava schedules …      images.py     ava images build
secrets.py       ava secrets … (from secrets_user.py: set/list/delete through the API,
                 and secrets_keys.py: rotate-key/key-status on the server's database)
serve.py         ava serve
"""

from __future__ import annotations

from ava_platform.cli.main import app, main

__all__ = ["app", "main"]
