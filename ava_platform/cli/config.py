"""Where the CLI finds its server and identity: flags, then AVA_* environment variables, then
a profile file, then defaults.

The profile file is TOML, `$AVA_PROFILE` or `~/.config/ava/profile.toml`
(`$XDG_CONFIG_HOME/ava/profile.toml`), with the same five keys:

    url = "http://127.0.0.1:8080"
    internal_secret = "..."
    tenant_id = "ten_acme"
    user_id = "usr_ci"
    role = "tenant-admin"
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ava_platform.client import DEFAULT_URL, AsyncAvaClient, AvaClient, Identity

KEYS = ("url", "internal_secret", "tenant_id", "user_id", "role")
ENV = {
    "url": "AVA_URL",
    "internal_secret": "AVA_INTERNAL_SECRET",
    "tenant_id": "AVA_TENANT_ID",
    "user_id": "AVA_USER_ID",
    "role": "AVA_ROLE",
}
FLAGS = {
    "url": "--url",
    "internal_secret": "--internal-secret",
    "tenant_id": "--tenant",
    "user_id": "--user",
    "role": "--role",
}
DEFAULTS = {"url": DEFAULT_URL, "role": "tenant-admin"}


class ConfigProblem(Exception):
    """The CLI cannot talk to a server as configured (a usage error: exit 2)."""


@dataclass
class CliOptions:
    """What the root command's flags said; `None` means not given."""

    flags: dict[str, str | None] = field(default_factory=dict)
    profile: Path | None = None
    json: bool = False
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)


def profile_path(options: CliOptions) -> Path:
    if options.profile is not None:
        return options.profile
    if options.env.get("AVA_PROFILE"):
        return Path(options.env["AVA_PROFILE"]).expanduser()
    base = options.env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ava" / "profile.toml"


def load_profile(path: Path, *, required: bool) -> dict[str, str]:
    if not path.is_file():
        if required:
            raise ConfigProblem(f"profile file {path} not found")
        return {}
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigProblem(f"profile file {path}: {exc}") from None
    unknown = sorted(set(data) - set(KEYS))
    if unknown:
        raise ConfigProblem(f"profile file {path}: unknown keys {', '.join(unknown)}")
    return {k: str(v) for k, v in data.items()}


def resolve(options: CliOptions) -> dict[str, str]:
    """Every key's value by precedence: flag, environment, profile file, default."""
    explicit = options.profile is not None or bool(options.env.get("AVA_PROFILE"))
    profile = load_profile(profile_path(options), required=explicit)
    values: dict[str, str] = {}
    for key in KEYS:
        value = options.flags.get(key) or options.env.get(ENV[key]) or profile.get(key)
        value = value or DEFAULTS.get(key)
        if not value:
            raise ConfigProblem(
                f"no {key.replace('_', ' ')}: pass {FLAGS[key]}, set {ENV[key]}, "
                f"or put `{key} = ...` in {profile_path(options)}"
            )
        values[key] = value
    return values


def _identity(values: dict[str, str]) -> Identity:
    return Identity(
        internal_secret=values["internal_secret"],
        tenant_id=values["tenant_id"],
        user_id=values["user_id"],
        role=values["role"],
    )


def make_client(options: CliOptions) -> AvaClient:
    values = resolve(options)
    return AvaClient(values["url"], _identity(values))


def make_async_client(options: CliOptions) -> AsyncAvaClient:
    values = resolve(options)
    return AsyncAvaClient(values["url"], _identity(values))
