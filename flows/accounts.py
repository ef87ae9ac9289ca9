"""Accounts: a source, a key and (Invent) an organisation; the unit every piece of state belongs to.

The environment describes one Cozmox account and one Invent account per org in INVENT_ORG_ID.
An optional accounts file (CHATSYNC_CONFIG, default chatsync.toml) lists any number more, each
naming where its key is kept, never the key itself:

    [accounts.acme]
    source = "invent"
    org_id = "org_123"              # Invent only; default c, the key's own org
    base_url = "https://..."        # optional
    api_key_env = "ACME_INVENT_KEY" # or api_key_secret = "acme-invent-key" (a Prefect Secret block)
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from dotenv import dotenv_values
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from flows.settings import Settings


class ConfigError(ValueError):
    """The accounts cannot be worked out from the configuration; the message says why."""


@dataclass(frozen=True)
class Account:
    name: str
    source: str
    base_url: str
    org: str | None = None  # as configured: an org id, or Invent's shorthand c
    api_key: str | None = field(default=None, repr=False)  # from the environment's own variables
    key_env: str | None = None
    key_secret: str | None = None

    def key(self) -> str:
        """The account's API key, read where the configuration says it is kept."""
        if self.api_key:
            return self.api_key
        if self.key_env:
            value = os.environ.get(self.key_env) or dotenv_values(".env").get(self.key_env)
            if not value:
                raise ConfigError(f"{self.name}: no API key: the variable {self.key_env} is not set")
            return value
        if self.key_secret:
            return _secret(self.name, self.key_secret)
        raise ConfigError(f"{self.name}: no API key is configured")


def _secret(account: str, block: str) -> str:
    from prefect.blocks.system import Secret

    try:
        secret = cast("Secret[str]", Secret.load(block))  # outside async code, Prefect answers at once
        value = secret.get()
    except Exception as exc:  # noqa: BLE001 - Prefect raises ValueError for a missing block, others for no server
        raise ConfigError(f"{account}: the Prefect Secret block {block!r} could not be read "
                          f"({type(exc).__name__})") from None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{account}: the Prefect Secret block {block!r} holds no key")
    return value


class _FileAccount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source: str
    org_id: str | None = None
    base_url: str | None = None
    api_key_env: str | None = None
    api_key_secret: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_keys_here(cls, values: object) -> object:
        if isinstance(values, dict) and "api_key" in values:
            raise ValueError("holds a key: keep it in an environment variable or a Prefect Secret block "
                             "and name that with api_key_env or api_key_secret")
        return values

    @model_validator(mode="after")
    def _one_key_place(self) -> _FileAccount:
        if (self.api_key_env is None) == (self.api_key_secret is None):
            raise ValueError("name exactly one of api_key_env and api_key_secret")
        return self


def _from_environment(settings: Settings) -> list[Account]:
    accounts = []
    if settings.cozmox_api_key:
        accounts.append(Account("cozmox", "cozmox", settings.cozmox_base_url, api_key=settings.cozmox_api_key))
    if settings.invent_api_key:
        orgs = list(dict.fromkeys(o.strip() for o in settings.invent_org_id.split(",") if o.strip()))
        for org in orgs or ["c"]:
            name = "invent" if orgs in ([], ["c"]) else f"invent:{org}"
            accounts.append(Account(name, "invent", settings.invent_base_url, org=org,
                                    api_key=settings.invent_api_key))
    return accounts


def _from_file(path: Path, explicit: bool) -> list[Account]:
    from flows.sources import SOURCES

    if not path.is_file():
        if explicit:
            raise ConfigError(f"accounts file {path}: no such file (CHATSYNC_CONFIG)")
        return []
    try:
        document = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"accounts file {path}: {exc}") from None
    listed = document.get("accounts", {})
    unknown = set(document) - {"accounts"}
    if unknown or not isinstance(listed, dict):
        raise ConfigError(f"accounts file {path}: expected only [accounts.NAME] tables, "
                          f"found {sorted(unknown) or 'accounts'}")
    accounts = []
    for name, table in listed.items():
        try:
            entry = _FileAccount.model_validate(table)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise ConfigError(f"accounts file {path}: account {name!r}: {where + ': ' if where else ''}"
                              f"{err['msg'].removeprefix('Value error, ')}") from None
        if entry.source not in SOURCES:
            raise ConfigError(f"accounts file {path}: account {name!r}: unknown source {entry.source!r} "
                              f"(one of {', '.join(SOURCES)})")
        kind = SOURCES[entry.source][0]
        if entry.org_id is not None and kind.default_org is None:
            raise ConfigError(f"accounts file {path}: account {name!r}: {entry.source} accounts have no org_id")
        accounts.append(Account(name, entry.source, entry.base_url or kind.default_base_url,
                                org=entry.org_id or kind.default_org, key_env=entry.api_key_env,
                                key_secret=entry.api_key_secret))
    return accounts


def configured_accounts(settings: Settings) -> list[Account]:
    """Every account the environment and the accounts file describe, in that order."""
    accounts = _from_environment(settings) + _from_file(Path(settings.config).expanduser(),
                                                         explicit="config" in settings.model_fields_set)
    names = [a.name for a in accounts]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ConfigError(f"account {twice[0]!r} is named twice (the environment's accounts are "
                          f"cozmox, invent and invent:ORG); rename it in the accounts file")
    return accounts


def selected_accounts(settings: Settings, source: str | None = None, account: str | None = None) -> list[Account]:
    """The accounts a command works on: the one named, those of one source, or all."""
    from flows.sources import SOURCES

    if source is not None and source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}: choose one of {', '.join(SOURCES)}")
    accounts = configured_accounts(settings)
    if account is not None:
        chosen = [a for a in accounts if a.name == account]
        if not chosen:
            known = ", ".join(a.name for a in accounts) or "none"
            raise ConfigError(f"no account is named {account!r} (configured: {known})")
        accounts = chosen
    if source is not None:
        accounts = [a for a in accounts if a.source == source]
        if not accounts:
            raise ConfigError(f"{source}: no API key is set ({source.upper()}_API_KEY) "
                              f"and no {source} account is in the accounts file")
    if not accounts:
        raise ConfigError("no source is configured: set COZMOX_API_KEY or INVENT_API_KEY, "
                          "or list accounts in chatsync.toml")
    return accounts
