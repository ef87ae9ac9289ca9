"""Prefect settings chatsync runs with, set before Prefect is first imported.

Prefect reads its settings at import, so the command calls `configure()` first. Each is only a
default: a user's own environment or Prefect profile wins.
"""

import os

DEFAULTS = {
    # Logs go to standard output, so that standard error holds only the one line that says why
    # a run failed.
    "PREFECT_LOGGING_HANDLERS_CONSOLE_STREAM": "ext://sys.stdout",
    # chatsync's own log lines reach the Prefect UI next to the flow's.
    "PREFECT_LOGGING_EXTRA_LOGGERS": "chatsync",
    # A temporary server has no use for telemetry, and its heartbeat races the server's SQLite.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "DO_NOT_TRACK": "1",
    "PREFECT_TASKS_DEFAULT_NO_CACHE": "true",
    # The same code runs outside flows too (tests, scripts); its logs then stay local quietly.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # A fresh Prefect home migrates its SQLite as the temporary server boots: 15 s on an idle
    # 2-core machine, past Prefect's 20 s limit on a busy one, and the first run then fails.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


def configure() -> None:
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)


def one_shot_runs() -> None:
    """For a command's flow run, once Prefect is imported: no heartbeats, unless the user sets
    their frequency. Prefect sends one when a run starts and then every few minutes, for
    automations that spot runs which stopped answering; a command's run is over in seconds, and
    its end waited for the heartbeat thread's one-second sleep to run out: 0.5 s on average."""
    from prefect.settings import get_current_settings

    flows = get_current_settings().flows
    if "heartbeat_frequency" not in flows.model_fields_set:
        flows.heartbeat_frequency = None
