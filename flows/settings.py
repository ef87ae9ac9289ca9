"""Configuration from the environment and a `.env` file (CONTRACT.md), one field per variable."""

from __future__ import annotations

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from extract.settings import (
    COZMOX_MAX_LIMIT,
    COZMOX_DEFAULT_BASE_URL,
    INVENT_DEFAULT_BASE_URL,
    INVENT_DEFAULT_ORG,
)

SOURCES = ("cozmox", "invent")


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

    def api_key(self, source: str) -> str | None:
        return self.cozmox_api_key if source == "cozmox" else self.invent_api_key

    def base_url(self, source: str) -> str:
        return self.cozmox_base_url if source == "cozmox" else self.invent_base_url

    def configured_sources(self) -> list[str]:
        return [s for s in SOURCES if self.api_key(s)]
