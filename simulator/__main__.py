"""`python -m simulator`: serve both simulated APIs until interrupted, for manual runs."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from datetime import timedelta

from simulator import Simulator, SimulatorServer
from simulator.broken import BROKEN_ASSUMPTIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m simulator", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="assumptions --break NAME breaks (chatsync doctor names each):\n"
               + "\n".join(f"  {name:<26} {text}" for name, text in BROKEN_ASSUMPTIONS.items()))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cozmox-chats", type=int, default=1000)
    parser.add_argument("--invent-chats", type=int, default=200)
    parser.add_argument("--api-key", default="sim-key")
    parser.add_argument("--orgs", type=int, default=1,
                        help="serve this many orgs (seeds SEED, SEED+1, ...) behind the one key; "
                             "Cozmox answers for the first, Invent for each by its org id")
    parser.add_argument("--history-days", type=float, default=30)
    parser.add_argument("--lag-seconds", type=float, default=1.0)
    parser.add_argument("--cozmox-sort-key", choices=["createdAt", "updatedAt"],
                        default="createdAt")
    parser.add_argument("--break", dest="broken", action="append", default=[], metavar="NAME",
                        choices=sorted(BROKEN_ASSUMPTIONS), help="break this assumption (repeatable; listed below)")
    args = parser.parse_args(argv)
    if args.orgs < 1:
        parser.error("--orgs must be at least 1")
    sims = [Simulator(seed=args.seed + i, cozmox_chats=args.cozmox_chats,
                      invent_chats=args.invent_chats, api_key=args.api_key,
                      history_days=args.history_days, lag=timedelta(seconds=args.lag_seconds),
                      cozmox_sort_key=args.cozmox_sort_key, broken=args.broken)
            for i in range(args.orgs)]
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with SimulatorServer(*sims, host=args.host, port=args.port) as server:
        print(f"COZMOX_BASE_URL={server.cozmox_url}")
        print(f"INVENT_BASE_URL={server.invent_url}")
        for i, sim in enumerate(sims, 1):
            print(f"org {i} (seed {sim.seed}): invent org id {sim.invent_org_id}, "
                  f"cozmox org id {sim.cozmox_org_id}")
        if args.broken:
            print(f"broken: {', '.join(args.broken)}")
        print(f"API key: {args.api_key}   (Ctrl-C to stop)", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
