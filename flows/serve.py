"""`chatsync serve`: the sync as a scheduled Prefect deployment.

Schedules do not fire on Prefect's temporary server, so with no `PREFECT_API_URL` this starts a
real local Prefect server (its SQLite under chatsync's own PREFECT_HOME) for as long as it
serves, and stops it on the way out. With `PREFECT_API_URL` set, it serves against that server.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import cast

import httpx
from rich.console import Console

from flows.temporary_server import die_with_parent, end_process, free_port, prefect_home

DEFAULT_CRON = "*/15 * * * *"
DEPLOYMENT = "chatsync-sync"


class ServeError(Exception):
    pass


@contextmanager
def local_prefect_server(out: Console, startup_seconds: float = 120) -> Iterator[str]:
    """A `prefect server start` of our own on a loopback port; yields its API URL."""
    home = prefect_home()
    home.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(os.environ, PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false")
    env.pop("PREFECT_API_URL", None)
    log_file = (home / "server.log").open("ab")
    command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT,
                              preexec_fn=die_with_parent if sys.platform == "linux" else None)
    api = f"http://127.0.0.1:{port}/api"
    try:
        deadline = time.monotonic() + startup_seconds
        while True:
            if server.poll() is not None:
                raise ServeError(f"the local Prefect server stopped at start; see {home / 'server.log'}")
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise ServeError(f"the local Prefect server did not answer within {startup_seconds:.0f}s")
            time.sleep(0.5)
        out.print(f"Prefect server (local, data in {home}): UI at http://127.0.0.1:{port}")
        yield api
    finally:
        end_process(server, grace_seconds=20)
        log_file.close()


def serve(out: Console, source: str | None, account: str | None, database: str, cron: str | None,
          interval: float | None) -> None:
    """Serves the sync flow until interrupted; overlapping runs are cancelled, not stacked. Each
    run syncs every configured account (or the source's, or the one named)."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.deployments.runner import EntrypointType, RunnerDeployment
    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flows.sync_flow import sync_flow

    @contextmanager
    def api() -> Iterator[str]:
        if os.environ.get("PREFECT_API_URL"):
            out.print(f"Prefect server: {os.environ['PREFECT_API_URL']}")
            yield os.environ["PREFECT_API_URL"]
        else:
            with local_prefect_server(out) as url:
                yield url

    with api() as url:
        os.environ["PREFECT_API_URL"] = url  # the flow runs the runner starts inherit it
        with temporary_settings(updates={PREFECT_API_URL: url}):
            schedule = {"interval": timedelta(seconds=interval)} if interval else {"cron": cron or DEFAULT_CRON}
            every = f"every {interval:g}s" if interval else f"on cron '{cron or DEFAULT_CRON}'"
            out.print(f"Serving deployment {DEPLOYMENT!r} {every}; Ctrl-C stops it.")
            # Outside async code, Prefect answers at once rather than with a coroutine.
            deployment = cast(RunnerDeployment, sync_flow.to_deployment(
                name=DEPLOYMENT,
                parameters={"source": source, "account": account, "database": database},
                concurrency_limit=ConcurrencyLimitConfig(limit=1,
                                                         collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW),
                entrypoint_type=EntrypointType.MODULE_PATH,
                **schedule,
            ))
            from prefect import serve as prefect_serve

            with contextlib.suppress(KeyboardInterrupt):
                prefect_serve(deployment, print_starting_message=False)
