"""`ava secrets rotate-key|key-status`: operator commands for the vault, run beside the
server on its database (no API call). `register` adds them to the `secrets` group."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from ava_platform.service.vault import SealedRows
    from ava_platform.store.database import Database


def _keys(env_name: str) -> list[bytes]:
    from ava_platform.config import decode_keyring
    from ava_platform.errors import ConfigError

    raw = os.environ.get(env_name, "")
    if not raw:
        typer.echo(f"ava secrets: {env_name} is not set", err=True)
        raise typer.Exit(2)
    try:
        return decode_keyring(raw)
    except ConfigError as exc:
        typer.echo(f"ava secrets: {env_name}: {exc.message}", err=True)
        raise typer.Exit(2) from None


def _db_path(db: Path | None) -> Path:
    return db or Path(os.environ.get("AVA_DB_PATH") or ".data/ava.db")


def _database(db: Path | None) -> Database:
    """--db names a SQLite file; without it, $AVA_DATABASE_URL's PostgreSQL, else $AVA_DB_PATH."""
    url = os.environ.get("AVA_DATABASE_URL")
    if db is None and url:
        from ava_platform.store.postgres.db import PostgresDatabase

        return PostgresDatabase(url)
    from ava_platform.store.db import Database as SqliteDatabase

    return SqliteDatabase(_db_path(db))


async def _rotate(db: Database, keys: list[bytes]) -> tuple[int, int, dict[str, int]]:
    """Re-seals both tables of sealed values: the tenants' secrets and their webhook signing
    secrets (a signing secret left under a key later removed could sign nothing)."""
    from ava_platform.service.vault import Keyring, rotate

    await db.open()
    try:
        resealed = changed = 0
        for rows in _sealed_tables(db):
            result = await rotate(rows, Keyring(keys))
            resealed, changed = resealed + result.resealed, changed + result.changed
        return resealed, changed, await _count_by_key_version(db)
    finally:
        await db.close()


def _sealed_tables(db: Database) -> list[SealedRows]:
    from ava_platform.store.secrets import SecretStore
    from ava_platform.store.webhooks import WebhookStore

    return [SecretStore(db), WebhookStore(db)]


async def _count_by_key_version(db: Database) -> dict[str, int]:
    counts: dict[str, int] = {}
    for rows in _sealed_tables(db):
        for version, n in (await rows.count_by_key_version()).items():
            counts[version] = counts.get(version, 0) + n
    return counts


def rotate_key(
    new_key_env: Annotated[
        str, typer.Option(help="Environment variable holding the new key.")
    ] = "AVA_NEW_SECRET_KEY",
    db: Annotated[Path | None, typer.Option(help="SQLite file (default $AVA_DB_PATH).")] = None,
) -> None:
    """Re-encrypt every secret (and every tenant's webhook signing secret) under a new key, online.

    Reads the keys that open today's values from AVA_SECRET_KEY (one key, or `NEW,OLD,...`)
    and the new key from $AVA_NEW_SECRET_KEY (or --new-key-env); without a new key, the first
    key of AVA_SECRET_KEY is the target. Safe to run while the server runs, once the server
    already knows the new key (AVA_SECRET_KEY="NEW,OLD"); see README.md, "Rotating the key without downtime".
    """
    from ava_platform.errors import AvaError
    from ava_platform.service.vault import key_id

    old = _keys("AVA_SECRET_KEY")
    new = _keys(new_key_env)[:1] if os.environ.get(new_key_env) else old[:1]
    keyring = [*new, *(k for k in old if k != new[0])]
    try:
        resealed, changed, by_key = asyncio.run(_rotate(_database(db), keyring))
    except AvaError as exc:
        typer.echo(f"ava secrets rotate-key: {exc.message}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"key version {key_id(new[0])}: re-encrypted {resealed} secret(s)")
    if changed:
        typer.echo(f"{changed} secret(s) changed meanwhile; run again to cover them")
    stale = {k: n for k, n in by_key.items() if k != key_id(new[0])}
    if stale:
        typer.echo(f"still under other keys: {stale}", err=True)
        raise typer.Exit(1)


def key_status(
    db: Annotated[Path | None, typer.Option(help="SQLite file (default $AVA_DB_PATH).")] = None,
) -> None:
    """How many sealed values (secrets and webhook signing secrets) each key version holds, and which configured key that is; exits 1
    when a key version is none of AVA_SECRET_KEY's (its secrets cannot be opened)."""
    from ava_platform.service.vault import key_id

    keys = _keys("AVA_SECRET_KEY")
    names = {key_id(k): ("current" if i == 0 else f"previous #{i}") for i, k in enumerate(keys)}

    async def count() -> dict[str, int]:
        database = _database(db)
        await database.open()
        try:
            return await _count_by_key_version(database)
        finally:
            await database.close()

    unknown = 0
    for version, n in sorted(asyncio.run(count()).items()):
        typer.echo(f"{version}\t{n}\t{names.get(version, 'unknown key')}")
        unknown += 0 if version in names else n
    if unknown:
        typer.echo(
            f"ava secrets key-status: {unknown} secret(s) are under a key AVA_SECRET_KEY does not "
            "hold; the server cannot open them (add that key to AVA_SECRET_KEY)",
            err=True,
        )
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Adds `rotate-key` and `key-status` to the `secrets` group."""
    app.command("rotate-key")(rotate_key)
    app.command("key-status")(key_status)
