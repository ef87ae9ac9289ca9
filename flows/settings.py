"""Configuration from the environment and a `.env` file (README, Configuration), one field per variable."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import AliasChoices, BeforeValidator, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from extract.settings import (
    COZMOX_DEFAULT_BASE_URL,
    COZMOX_MAX_LIMIT,
    INVENT_DEFAULT_BASE_URL,
    INVENT_DEFAULT_ORG,
)
from flows.durations import parse_duration
from load.read_copy import read_copy_path


def _duration(value: object) -> object:
    return parse_duration(value) if isinstance(value, str) else value


def _env(name: str) -> AliasChoices:
    return AliasChoices(name, name.lower())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    database: str = Field("chatsync.duckdb", validation_alias=_env("CHATSYNC_DATABASE"))
    cozmox_base_url: str = Field(COZMOX_DEFAULT_BASE_URL, validation_alias=_env("COZMOX_BASE_URL"))
    cozmox_api_key: str | None = Field(None, validation_alias=_env("COZMOX_API_KEY"), repr=False)
    invent_base_url: str = Field(INVENT_DEFAULT_BASE_URL, validation_alias=_env("INVENT_BASE_URL"))
    invent_api_key: str | None = Field(None, validation_alias=_env("INVENT_API_KEY"), repr=False)
    invent_org_id: str = Field(INVENT_DEFAULT_ORG, validation_alias=_env("INVENT_ORG_ID"))
    # How long a sync, backfill or reconcile waits for another process to let go of the
    # warehouse file: scheduled runs of different accounts take turns on it.
    wait: Annotated[timedelta, BeforeValidator(_duration)] = Field(timedelta(minutes=3),
                                                                   validation_alias=_env("CHATSYNC_WAIT"))
    # The copy people and tools read while syncs write (`off`: none); default NAME.read.duckdb.
    read_database: str | None = Field(None, validation_alias=_env("CHATSYNC_READ_DATABASE"))
    # More accounts (many keys and orgs), from a file that names where each key is kept.
    config: str = Field("chatsync.toml", validation_alias=_env("CHATSYNC_CONFIG"))

    # How a run reads: chats per request, how far behind the watermark to re-read (late
    # commits), how long before its start a run stops (clock skew, in-flight writes).
    page_size: int = Field(250, ge=1, le=COZMOX_MAX_LIMIT, validation_alias=_env("CHATSYNC_PAGE_SIZE"))
    lookback_seconds: float = Field(600, ge=0, validation_alias=_env("CHATSYNC_LOOKBACK_SECONDS"))
    safety_margin_seconds: float = Field(60, ge=0, validation_alias=_env("CHATSYNC_SAFETY_MARGIN_SECONDS"))

    # How hard to try a flaky API before a run fails.
    timeout_seconds: float = Field(30, gt=0, validation_alias=_env("CHATSYNC_TIMEOUT_SECONDS"))
    max_attempts: int = Field(6, ge=1, validation_alias=_env("CHATSYNC_MAX_ATTEMPTS"))
    retry_backoff_seconds: float = Field(0.5, ge=0, validation_alias=_env("CHATSYNC_RETRY_BACKOFF_SECONDS"))

    # Invent needs a request per chat for its messages: how many at once, and at most how many a
    # minute (the API allows about 500 per address; 0 lifts the limit, for the simulator).
    invent_concurrency: int = Field(8, ge=1, le=64, validation_alias=_env("CHATSYNC_INVENT_CONCURRENCY"))
    invent_requests_per_minute: float = Field(
        450, ge=0, validation_alias=_env("CHATSYNC_INVENT_REQUESTS_PER_MINUTE")
    )

    @property
    def read_copy(self) -> str | None:
        return read_copy_path(self.database, self.read_database)
