"""The installed `chatsync` command: run warm when a waiting process can take it
(flows/warm_start.py), else cold, as flows/cli.py runs it; a cold flow command leaves a waiting
process for the next. Imports little, so that a warm command costs little more than Python."""

from __future__ import annotations

import os
import sys

from flows import warm_start


def run() -> None:
    args = sys.argv[1:]
    environment = dict(os.environ)  # as the user set it, before the command adds to it
    try:
        warm = warm_start.eligible(args)
    except (OSError, ValueError):  # a bad setting: the cold command says what is wrong with it
        warm = False
    if warm:
        status = warm_start.run(args)
        if status is not None:
            sys.exit(status)
    from flows.cli import run as run_cold

    try:
        run_cold()
    finally:
        if warm:
            warm_start.start_waiting_process(environment)
