"""One pooled HTTP client per source, with the retry policy both APIs need.

Every response is classified in one place, `_classify`:

    SourceError                 a source could not be read; the message names it and the cause
     ├── SourceAuthError        401/403: the key was rejected; never retried
     ├── SourceRequestError     another 4xx: the API refused what we asked; never retried
     └── SourceUnavailable      429, 5xx, timeouts, dropped connections and unreadable bodies,
                                retried with backoff until the budget ran out

Nothing here ever puts the API key into a message.
"""

from __future__ import annotations

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import httpx
import orjson

log = logging.getLogger("chatsync.extract")


class SourceError(Exception):
    def __init__(self, source: str, cause: str, status: int | None = None) -> None:
        super().__init__(f"{source}: {cause}")
        self.source = source
        self.cause = cause
        self.status = status


class SourceAuthError(SourceError):
    pass


class SourceRequestError(SourceError):
    pass


class SourceUnavailable(SourceError):
    pass


class _Retryable(Exception):
    def __init__(self, cause: str, retry_after: float | None = None) -> None:
        super().__init__(cause)
        self.cause = cause
        self.retry_after = retry_after


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter; `Retry-After` wins when the server sends it."""

    attempts: int = 6
    backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0

    def delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return random.uniform(0, min(self.max_backoff, self.backoff * 2 ** min(attempt, 32)))


@dataclass
class RequestStats:
    requests: int = 0
    retries: int = 0


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value)
        return seconds if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        return parsedate_to_datetime(value).timestamp() - time.time()
    except (TypeError, ValueError):
        return None


Decoder = Callable[[bytes, str], Any]


def _classify(source: str, path: str, response: httpx.Response, decode_body: Decoder) -> Any:
    """The decoded body of a good response; raises the error class the response deserves."""
    status = response.status_code
    if status in (401, 403):
        raise SourceAuthError(source, f"the API key was rejected (HTTP {status} from {path})", status)
    if status == 429 or status >= 500:
        raise _Retryable(f"HTTP {status} from {path}", _retry_after(response.headers.get("retry-after")))
    if status >= 400:
        detail = response.text[:200].replace("\n", " ")
        raise SourceRequestError(source, f"the API refused {path} (HTTP {status}): {detail}", status)
    try:
        return decode_body(response.content, path)
    except (ValueError, RecursionError):  # RecursionError: nested past what a parser follows
        raise _Retryable(f"an unreadable JSON body from {path}") from None


def decode(content: bytes, path: str) -> Any:
    """JSON as APIs really send it: orjson first; what only a lenient parser reads (NaN,
    Infinity, 1e400, lone surrogates) is read leniently and made plain JSON again, so that one
    odd record does not make its whole page unreadable."""
    try:
        return lenient_loads(content)
    except ValueError:
        raise _Retryable(f"an unreadable JSON body from {path}") from None


def dumps(value: Any) -> bytes:
    """JSON as UTF-8 bytes, which Arrow takes as they are (a Python str of text with a dash or
    an emoji in it takes two to four times the memory). orjson stops at 255 levels of nesting,
    the standard library goes on to about 1,000 levels;
    ValueError past that."""
    try:
        # a copy: orjson's own buffer is larger than the text it holds
        return bytes(memoryview(orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)))
    except TypeError:
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        except RecursionError:
            raise ValueError("the record is nested too deeply to store") from None


def lenient_loads(content: bytes) -> Any:
    """orjson, or where only a lenient parser reads the text, its value made plain JSON;
    ValueError where nothing reads it."""
    try:
        return orjson.loads(content)
    except orjson.JSONDecodeError:
        pass
    try:
        return _plain(json.loads(content))
    except (ValueError, RecursionError):
        raise ValueError("not readable as JSON") from None


def _plain(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64:
        return float(value)  # as orjson reads it
    if isinstance(value, str):
        return value.encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    return value


class _NoCookies(httpx.Cookies):
    def extract_cookies(self, response: httpx.Response) -> None:
        pass


class CookielessClient(httpx.Client):
    """httpx's client, minus cookies. Both APIs take a bearer key, and reading every response
    for cookies to keep is a sixth of httpx's time per request: Invent's messages alone take a
    request per chat."""

    _none = _NoCookies()

    @property  # type: ignore[misc]  # read-only on purpose: nothing is ever kept
    def cookies(self) -> httpx.Cookies:
        return self._none


class RateLimit:
    """Spaces requests to at most `per_minute`, shared by every thread of a client.

    Invent allows about 500 requests a minute per address; staying under it costs less than
    the 429s and their waits.
    """

    def __init__(self, per_minute: float | None) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self._lock:
            now = time.monotonic()
            slot = max(now, self._next)
            self._next = slot + self.interval
        if slot > now:
            time.sleep(slot - now)


def _keep_response(response: httpx.Response) -> None:
    """What happens to a response once its body is decoded: nothing, unless flows/runtime.py
    says otherwise."""


class ApiClient:
    after_decode: ClassVar[staticmethod[[httpx.Response], None]] = staticmethod(_keep_response)

    def __init__(
        self,
        source: str,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        retry: RetryPolicy = RetryPolicy(),
        max_connections: int = 8,
        requests_per_minute: float | None = None,
    ) -> None:
        self.source = source
        self.base_url = base_url.rstrip("/")
        self.retry = retry
        self.stats = RequestStats()
        self._stats_lock = threading.Lock()
        self.rate_limit = RateLimit(requests_per_minute)
        self._http = CookielessClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=True,
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def count_retry(self) -> None:
        with self._stats_lock:
            self.stats.retries += 1

    def get(
        self, path: str, params: dict[str, Any], check: Callable[[Any], str | None] | None = None,
        decode_body: Decoder = decode,
    ) -> tuple[Any, httpx.Headers]:
        """GET with retries; returns the decoded JSON body and the response headers.

        `check` names what is wrong with a body that decoded but is not what the endpoint
        promises (an envelope without results, a page of the wrong window); such a body is
        retried like a 503, since a proxy or a busy API produces both.
        """
        last = ""
        for attempt in range(self.retry.attempts):
            self.rate_limit.wait()
            with self._stats_lock:
                self.stats.requests += 1
            try:
                response = self._http.get(path, params=params)
                try:
                    body = _classify(self.source, path, response, decode_body)
                finally:
                    self.after_decode(response)
                problem = check(body) if check else None
                if problem:
                    raise _Retryable(f"{problem} from {path}")
                return body, response.headers
            except _Retryable as exc:
                last, wait = exc.cause, self.retry.delay(attempt, exc.retry_after)
            except httpx.TimeoutException:
                last, wait = f"a timeout on {path}", self.retry.delay(attempt, None)
            except httpx.TransportError as exc:
                if isinstance(exc, httpx.UnsupportedProtocol):
                    raise SourceRequestError(self.source, f"the base URL is not an HTTP URL ({exc})") from None
                if isinstance(exc, httpx.ConnectError):
                    last = f"could not connect to {self.base_url}"
                else:
                    last = f"the connection dropped during {path} ({type(exc).__name__})"
                wait = self.retry.delay(attempt, None)
            if attempt + 1 < self.retry.attempts:
                self.count_retry()
                log.warning("%s: %s; retrying in %.1fs", self.source, last, wait)
                time.sleep(wait)
        raise SourceUnavailable(self.source, f"{last} (gave up after {self.retry.attempts} attempts)")
