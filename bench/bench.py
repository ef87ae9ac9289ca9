"""chatsync against the fetch-only floor and against dlt, on the simulator, at two sizes.

    make bench                                          # small and large, median of 3
    python bench/bench.py --sizes small --repeat 1      # a quick look
    python bench/bench.py --skip-dlt                    # without the dlt rows

Sizes: small is 2,000 Cozmox and 500 Invent chats, large 20,000 and 5,000. Each size is served
by the simulator in this process, beside a second simulator that holds no chats. Every
measured program runs in a process of its own, so its wall seconds, CPU seconds (with the
children it waited for, such as Prefect's temporary server), peak memory (its own high-water
mark, without those children) and requests are its own.

The rows, run in this order in every repeat, so that a slow moment of the machine falls on all
of them alike:

    fetch-only floor                bench/floor.py: every page and every chat's messages
                                    fetched as chatsync must, with chatsync's HTTP client, and
                                    thrown away; the least the wire allows
    dlt rest_api, tuned             bench/dlt_pipeline.py --tuned, the baseline: dlt as a user
                                    who cares about speed sets it up (parallelized resources,
                                    8 extract workers, jsonl without compression, stops on a
                                    short page)
    dlt rest_api, defaults          bench/dlt_pipeline.py: the same job at dlt's defaults
    chatsync sync --full-refresh    the whole command, into a new warehouse
    chatsync, empty API (start-up)  `chatsync sync` against the simulator with no chats, into
                                    a new warehouse: the fixed cost of a command (warm)
    chatsync, empty API, cold       the same command run cold (`python -m flows.cli`), as the
                                    first command after the waiting process stopped: for
                                    reference, since the full refresh starts warm
    chatsync sync, 1% changed       `chatsync sync` into the full refresh's warehouse after 1%
                                    of each source's chats got a new message

Seconds and requests are the median of --repeat runs, CPU too; peak MB is the highest. All
chatsync runs share one Prefect home for the whole bench, warmed by one untimed run first, as
on a user's machine from the second command on. That run also leaves the process that later
`sync` commands run warm on (flows/warm_start.py): each runs in a copy of it, so a warm row's CPU
seconds and peak memory are the command's own plus its copy's, from that process's log, and a
row that ran warm or cold other than as labelled stops the bench. Invent's
request ceiling is off for chatsync (CHATSYNC_INVENT_REQUESTS_PER_MINUTE=0), as the simulator
has none.

After every run the rows it loaded are counted and compared with what the simulator holds at
that moment: chats of each source, Cozmox chats' `messages` and Invent's messages (the floor's
requests instead). A program that loaded a wrong number stops the bench.

Then the targets, each with its figure from this run and whether it is met.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator import Simulator, SimulatorServer

HERE = Path(__file__).resolve().parent

SIZES = {"small": (2_000, 500), "large": (20_000, 5_000)}
KEY = "bench-key"
PAGE = 100  # records a page, as chatsync, the floor and both dlt pipelines ask for
CHATSYNC = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or "chatsync"

FLOOR = "fetch-only floor"
DLT_TUNED = "dlt rest_api, tuned"
DLT_DEFAULT = "dlt rest_api, defaults"
FULL = "chatsync sync --full-refresh"
EMPTY = "chatsync, empty API (start-up)"
EMPTY_COLD = "chatsync, empty API, cold"
INCREMENTAL = "chatsync sync, 1% changed"


@dataclass
class Measure:
    seconds: float
    cpu_seconds: float  # the program's, with the children it waited for (Prefect's server)
    simulator_cpu_seconds: float  # this process's while the program ran: the simulator answering it
    peak_mb: float
    requests: int


@dataclass(frozen=True)
class Rows:
    cozmox_chats: int
    invent_chats: int
    cozmox_messages: int
    invent_messages: int

    def __str__(self) -> str:
        return (f"{self.cozmox_chats:,} + {self.invent_chats:,} chats, "
                f"{self.cozmox_messages:,} + {self.invent_messages:,} messages")


NO_ROWS = Rows(0, 0, 0, 0)


def _own_peak_kb(pid: int) -> int | None:
    """The process's own high-water mark (VmHWM): unlike the rusage of wait4, it leaves out
    the children it reaped, such as Prefect's temporary server."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


WARM_RUN = re.compile(r"ran `.*` \(PID \d+\): exit -?\d+, [\d.]+ s, ([\d.]+) CPU s, peak (\d+) MB")


def warm_runs(log: Path, offset: int) -> list[tuple[float, float]]:
    """CPU seconds and peak MB of the commands that a waiting process ran (flows/warm_start.py)
    since `offset` of its log: they ran in its copies, not in the process that was measured."""
    try:
        with log.open() as lines:
            lines.seek(offset)
            return [(float(m[1]), float(m[2])) for m in map(WARM_RUN.search, lines) if m]
    except OSError:
        return []


def chatsync_home(home: str) -> Path:
    """chatsync's Prefect home within the bench's: its local server, and the process that
    commands start warm on."""
    return Path(home) / "chatsync"


def wait_for_warm_start(home: str) -> None:
    """Waits for the process a cold command left to take the next, so that its imports are not
    timed with another program's run."""
    socket = chatsync_home(home) / "warm-start.sock"
    deadline = time.monotonic() + 60
    while not socket.exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def run(command: list[str], env: dict[str, str], sim: Simulator, warm: bool | None = None) -> Measure:
    """Runs and measures `command`; `warm` says whether a chatsync command must have run warm
    (True) or cold (False), so that no row is labelled what it was not."""
    before = sim.request_count()
    warm_log = Path(env.get("CHATSYNC_PREFECT_HOME", "/nonexistent")) / "warm-start.log"
    log_offset = warm_log.stat().st_size if warm_log.exists() else 0
    # stderr to a file, not a pipe: a program that logs more than a pipe holds would block.
    with tempfile.TemporaryFile() as stderr:
        began, simulator_began = time.perf_counter(), time.process_time()
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        peak_kb = 0
        while True:
            # Read before reaping: VmHWM only grows, so the last reading is the peak to within 20 ms.
            peak_kb = _own_peak_kb(process.pid) or peak_kb
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.02)
        seconds, simulator_cpu = time.perf_counter() - began, time.process_time() - simulator_began
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"{' '.join(command[:3])} failed: {stderr.read().decode()[-2000:]}")
    cpu, peak_mb = usage.ru_utime + usage.ru_stime, (peak_kb or usage.ru_maxrss) / 1024
    copies = warm_runs(warm_log, log_offset)
    if warm is not None and bool(copies) != warm:
        raise SystemExit(f"{' '.join(command[:3])} ran {'cold' if warm else 'warm'}; see {warm_log}")
    for copy_cpu, copy_peak_mb in copies:
        cpu, peak_mb = cpu + copy_cpu, max(peak_mb, copy_peak_mb)
    return Measure(seconds, cpu, simulator_cpu, peak_mb, sim.request_count() - before)


def median(measures: list[Measure]) -> Measure:
    return Measure(statistics.median(m.seconds for m in measures),
                   statistics.median(m.cpu_seconds for m in measures),
                   statistics.median(m.simulator_cpu_seconds for m in measures),
                   max(m.peak_mb for m in measures), int(statistics.median(m.requests for m in measures)))


def held(sim: Simulator) -> Rows:
    """What the simulator serves now: the rows a full load must end with."""
    invent_ids = sim.chat_ids("invent")
    return Rows(len(sim.chat_ids("cozmox")), len(invent_ids),
                sum(len(chat.get("messages") or []) for chat in sim.cozmox_chats()),
                sum(len(sim.invent_messages(chat_id)) for chat_id in invent_ids))


def floor_requests(rows: Rows) -> int:
    """Pages until a short one, for each listing, and one page of messages a chat (none has
    more than a page in the simulator; `held` would show it in the counts)."""
    return rows.cozmox_chats // PAGE + 1 + rows.invent_chats // PAGE + 1 + rows.invent_chats


def _count(database: str, sql: str) -> int:
    with duckdb.connect(database, read_only=True) as db:
        return int(db.execute(sql).fetchall()[0][0])


def chatsync_rows(database: str) -> Rows:
    return Rows(
        _count(database, "select count(*) from chats where source = 'cozmox'"),
        _count(database, "select count(*) from chats where source = 'invent'"),
        # A Cozmox chat's `messages`; its `output` and `input` lists are stored beside them.
        _count(database, "select count(*) from messages where source = 'cozmox' and kind = 'message'"),
        _count(database, "select count(*) from messages where source = 'invent'"))


def dlt_rows(database: str) -> Rows:
    return Rows(*(_count(database, f"select count(*) from chats.{table}") for table in
                  ("cozmox_chats", "invent_chats", "cozmox_chats__messages", "invent_messages")))


def check(label: str, loaded: Rows, expected: Rows) -> None:
    if loaded != expected:
        raise SystemExit(f"{label} loaded {loaded}; the API holds {expected}")


def chatsync_env(server: SimulatorServer, database: str, home: str) -> dict[str, str]:
    env = dict(os.environ, COZMOX_BASE_URL=server.cozmox_url, INVENT_BASE_URL=server.invent_url,
               COZMOX_API_KEY=KEY, INVENT_API_KEY=KEY, CHATSYNC_DATABASE=database,
               CHATSYNC_INVENT_REQUESTS_PER_MINUTE="0", CHATSYNC_SAFETY_MARGIN_SECONDS="0",
               PREFECT_HOME=home, CHATSYNC_PREFECT_HOME=str(chatsync_home(home)))
    env.pop("PREFECT_API_URL", None)
    return env


def remove(database: str) -> None:
    for path in (database, database + ".wal"):
        Path(path).unlink(missing_ok=True)
    shutil.rmtree(database + ".dlt", ignore_errors=True)


def bench_size(name: str, repeat: int, with_dlt: bool, work: Path, home: str,
               empty: SimulatorServer) -> tuple[dict[str, Measure], Rows]:
    cozmox_chats, invent_chats = SIZES[name]
    runs: dict[str, list[Measure]] = {}
    rng = random.Random(7)

    sim = Simulator(seed=7, cozmox_chats=cozmox_chats, invent_chats=invent_chats, api_key=KEY)
    first = expected = held(sim)
    with SimulatorServer(sim) as server:
        def dlt(label: str, database: str, *flags: str) -> None:
            command = [sys.executable, str(HERE / "dlt_pipeline.py"), *flags, server.cozmox_url,
                       server.invent_url, KEY, database]
            runs.setdefault(label, []).append(run(command, dict(os.environ), sim))
            check(label, dlt_rows(database), expected)
            remove(database)

        for i in range(repeat):
            floor = [sys.executable, str(HERE / "floor.py"), server.cozmox_url, server.invent_url, KEY]
            measure = run(floor, dict(os.environ), sim)
            runs.setdefault(FLOOR, []).append(measure)
            if measure.requests != floor_requests(expected):
                raise SystemExit(f"{FLOOR} made {measure.requests} requests, not {floor_requests(expected)}")

            if with_dlt:
                dlt(DLT_TUNED, str(work / f"dlt-tuned-{name}-{i}.duckdb"), "--tuned")
                dlt(DLT_DEFAULT, str(work / f"dlt-default-{name}-{i}.duckdb"))

            database = str(work / f"{name}-{i}.duckdb")
            env = chatsync_env(server, database, home)
            wait_for_warm_start(home)
            runs.setdefault(FULL, []).append(run([CHATSYNC, "sync", "--full-refresh"], env, sim, warm=True))
            check(FULL, chatsync_rows(database), expected)

            nothing = str(work / f"empty-{name}-{i}.duckdb")
            runs.setdefault(EMPTY, []).append(
                run([CHATSYNC, "sync"], chatsync_env(empty, nothing, home), empty.sim, warm=True))
            check(EMPTY, chatsync_rows(nothing), NO_ROWS)
            remove(nothing)
            runs.setdefault(EMPTY_COLD, []).append(
                run([sys.executable, "-m", "flows.cli", "sync"], chatsync_env(empty, nothing, home), empty.sim,
                    warm=False))
            check(EMPTY_COLD, chatsync_rows(nothing), NO_ROWS)
            remove(nothing)

            for source, count in (("cozmox", cozmox_chats), ("invent", invent_chats)):
                for chat_id in rng.sample(sim.chat_ids(source), max(1, count // 100)):
                    sim.touch(source, chat_id)
            expected = held(sim)
            runs.setdefault(INCREMENTAL, []).append(run([CHATSYNC, "sync"], env, sim, warm=True))
            check(INCREMENTAL, chatsync_rows(database), expected)
            remove(database)
    return {label: median(measures) for label, measures in runs.items()}, first


def verdict(label: str, figure: str, target: str, met: bool) -> None:
    print(f"  {label:50} {figure:>9}   target {target:10} {'met' if met else 'MISSED'}")


def report(name: str, results: dict[str, Measure], rows: Rows) -> None:
    cozmox_chats, invent_chats = SIZES[name]
    print(f"\n{name}: {cozmox_chats:,} Cozmox and {invent_chats:,} Invent chats; every run loaded all of"
          f" them ({rows} at first)")
    print(f"{'':32} {'seconds':>8} {'peak MB':>8} {'CPU s':>8} {'sim CPU s':>9} {'requests':>8}")
    for label, m in results.items():
        print(f"{label:32} {m.seconds:8.2f} {m.peak_mb:8.0f} {m.cpu_seconds:8.2f} {m.simulator_cpu_seconds:9.2f}"
              f" {m.requests:8d}")

    full, startup, floor = results[FULL], results[EMPTY], results[FLOOR]
    incremental = results[INCREMENTAL]
    print("targets:")
    if DLT_TUNED in results:
        ratio = results[DLT_TUNED].seconds / full.seconds
        verdict("dlt tuned / chatsync full refresh (wall)", f"{ratio:.2f}", ">= 3", ratio >= 3)
    beyond = (full.seconds - startup.seconds) / floor.seconds  # the full refresh starts warm
    verdict("(chatsync full refresh - its start-up) / floor", f"{beyond:.2f}", "<= 2", beyond <= 2)
    verdict("start-up: chatsync, empty API, warm Prefect home", f"{startup.seconds:.2f} s", "<= 2 s",
            startup.seconds <= 2)
    verdict("peak memory of the full refresh", f"{full.peak_mb:.0f} MB", "<= 450 MB", full.peak_mb <= 450)
    verdict("chatsync sync after 1% changed", f"{incremental.seconds:.2f} s", "< 3 s", incremental.seconds < 3)

    print("for reference:")
    if DLT_DEFAULT in results:
        print(f"  dlt defaults / chatsync full refresh (wall): {results[DLT_DEFAULT].seconds / full.seconds:.2f};"
              f" dlt tuned / floor: {results[DLT_TUNED].seconds / floor.seconds:.2f}")
    # Whatever overlaps with what, the cores cannot do the work in less than its CPU time over
    # their number: the part of the gap to the floor that is CPU, not waiting.
    work_cpu = full.cpu_seconds - startup.cpu_seconds + full.simulator_cpu_seconds
    cores = os.cpu_count() or 1
    print(f"  CPU of the full refresh less start-up, with the simulator's: {work_cpu:.1f} s, so at least"
          f" {work_cpu / cores:.1f} s on {cores} cores (the target allows {2 * floor.seconds:.1f} s)")
    print(f"  requests of the 1% changed run / the full refresh's: {incremental.requests / full.requests:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-dlt", action="store_true")
    args = parser.parse_args()
    with_dlt = not args.skip_dlt
    if with_dlt:
        try:
            import dlt  # noqa: F401 - whether it imports is the question
        except ImportError:
            print("dlt is not installed (pip install 'dlt[duckdb]'); measuring without it")
            with_dlt = False
    work = Path(tempfile.mkdtemp(prefix="chatsync-bench-"))
    home = str(work / "prefect")
    all_results = {}
    try:
        empty_sim = Simulator(seed=7, cozmox_chats=0, invent_chats=0, api_key=KEY)
        with SimulatorServer(empty_sim) as empty:
            # Prefect builds its database on first use: once, untimed, before anything is timed.
            warm = str(work / "warm.duckdb")
            run([CHATSYNC, "sync"], chatsync_env(empty, warm, home), empty_sim)
            remove(warm)
            wait_for_warm_start(home)
            for name in args.sizes.split(","):
                all_results[name], rows = bench_size(name, args.repeat, with_dlt, work, home, empty)
                report(name, all_results[name], rows)
        if {"small", "large"} <= set(all_results):
            small, large = (all_results[size][FULL].peak_mb for size in ("small", "large"))
            print()
            verdict("peak memory of the full refresh, large / small", f"{large / small:.2f}", "<= 1.3",
                    large / small <= 1.3)
    finally:
        from flows.temporary_server import stop_server

        stop_server(chatsync_home(home))  # its waiting process stops with it
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
