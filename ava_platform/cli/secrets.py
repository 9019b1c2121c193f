"""`ava secrets …`: the tenant's secrets through the API (set, list, delete) and the operator's
vault commands (rotate-key, key-status), one group registered from two modules."""

from __future__ import annotations

import typer

from ava_platform.cli import secrets_keys, secrets_user

secrets_app = typer.Typer(help="The secrets vault.", no_args_is_help=True)
secrets_keys.register(secrets_app)
secrets_user.register(secrets_app)
