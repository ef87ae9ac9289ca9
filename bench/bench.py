"""chatsync against the floor and against dlt, on the simulator, at two sizes.

    make bench                         # both sizes, 3 runs each
    python bench/bench.py --sizes small --repeat 1 --skip-dlt

The simulator runs in this process; every measured program runs in a process of its own, so
each one's wall time, CPU time, peak memory (its own, without the Prefect server it starts
beside it) and requests are its own. Prints, per size: wall seconds (median), chats per second,
CPU seconds of the program and of the simulator answering it, peak MB and requests, then the
ratios the targets are stated in.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from simulator import Simulator, SimulatorServer  # noqa: E402

SIZES = {"small": (2_000, 500), "large": (20_000, 5_000)}
KEY = "bench-key"


@dataclass
class Measure:
    seconds: float
    cpu_seconds: float  # the program's, with the children it waited for (Prefect's server)
    simulator_cpu_seconds: float  # this process's while the program ran: the simulator answering it
    peak_mb: float
    requests: int


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


def run(command: list[str], env: dict[str, str], sim: Simulator) -> Measure:
    before = sim.request_count()
    began, simulator_began = time.perf_counter(), time.process_time()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak_kb = 0
    while True:
        # Read before reaping: VmHWM only grows, so the last reading is the peak to within 20 ms.
        peak_kb = _own_peak_kb(process.pid) or peak_kb
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        time.sleep(0.02)
    seconds, simulator_cpu = time.perf_counter() - began, time.process_time() - simulator_began
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{command[0]} failed: {process.stderr.read().decode()[-2000:]}")
    return Measure(seconds, usage.ru_utime + usage.ru_stime, simulator_cpu, (peak_kb or usage.ru_maxrss) / 1024,
                   sim.request_count() - before)


def median(measures: list[Measure]) -> Measure:
    return Measure(statistics.median(m.seconds for m in measures),
                   statistics.median(m.cpu_seconds for m in measures),
                   statistics.median(m.simulator_cpu_seconds for m in measures),
                   max(m.peak_mb for m in measures), int(statistics.median(m.requests for m in measures)))


def chatsync_env(server: SimulatorServer, database: str, home: str) -> dict[str, str]:
    env = dict(os.environ, COZMOX_BASE_URL=server.cozmox_url, INVENT_BASE_URL=server.invent_url,
               COZMOX_API_KEY=KEY, INVENT_API_KEY=KEY, CHATSYNC_DATABASE=database,
               CHATSYNC_INVENT_REQUESTS_PER_MINUTE="0", CHATSYNC_SAFETY_MARGIN_SECONDS="0",
               PREFECT_HOME=home)
    env.pop("PREFECT_API_URL", None)
    return env


def bench_size(name: str, repeat: int, with_dlt: bool, work: Path) -> dict[str, Measure]:
    chatsync = shutil.which("chatsync", path=str(Path(sys.executable).parent)) or "chatsync"
    cozmox_chats, invent_chats = SIZES[name]
    results: dict[str, Measure] = {}
    home = str(work / "prefect")

    empty = Simulator(seed=7, cozmox_chats=0, invent_chats=0, api_key=KEY)
    with SimulatorServer(empty) as server:
        # Prefect builds its database on first use: once, before anything is timed.
        run([chatsync, "sync"], chatsync_env(server, str(work / "warm.duckdb"), home), empty)
        results["chatsync start-up (empty API)"] = median([
            run([chatsync, "sync"], chatsync_env(server, str(work / f"empty{i}.duckdb"), home), empty)
            for i in range(repeat)])

    sim = Simulator(seed=7, cozmox_chats=cozmox_chats, invent_chats=invent_chats, api_key=KEY)
    with SimulatorServer(sim) as server:
        floor = [sys.executable, str(HERE / "floor.py"), server.cozmox_url, server.invent_url, KEY]
        results["floor (fetch only)"] = median([run(floor, dict(os.environ), sim) for _ in range(repeat)])

        full, incremental = [], []
        rng = random.Random(7)
        for i in range(repeat):
            database = str(work / f"{name}-{i}.duckdb")
            env = chatsync_env(server, database, home)
            full.append(run([chatsync, "sync", "--full-refresh"], env, sim))
            for source, count in (("cozmox", cozmox_chats), ("invent", invent_chats)):
                for chat_id in rng.sample(sim.chat_ids(source), max(1, count // 100)):
                    sim.touch(source, chat_id)
            incremental.append(run([chatsync, "sync"], env, sim))
        results["chatsync sync --full-refresh"] = median(full)
        results["chatsync sync after 1% changed"] = median(incremental)

        if with_dlt:
            dlt_runs = []
            for i in range(repeat):
                database = str(work / f"dlt-{name}-{i}.duckdb")
                command = [sys.executable, str(HERE / "dlt_pipeline.py"), server.cozmox_url, server.invent_url,
                           KEY, database]
                dlt_runs.append(run(command, dict(os.environ), sim))
            results["dlt rest_api"] = median(dlt_runs)
    return results


def report(name: str, results: dict[str, Measure]) -> None:
    cozmox_chats, invent_chats = SIZES[name]
    chats = cozmox_chats + invent_chats
    print(f"\n{name}: {cozmox_chats} Cozmox and {invent_chats} Invent chats")
    print(f"{'':34} {'seconds':>9} {'chats/s':>9} {'CPU s':>9} {'sim CPU s':>9} {'peak MB':>9} {'requests':>9}")
    for label, m in results.items():
        rate = f"{chats / m.seconds:9.0f}" if "full" in label or "floor" in label or "dlt" in label else f"{'-':>9}"
        print(f"{label:34} {m.seconds:9.2f} {rate} {m.cpu_seconds:9.2f} {m.simulator_cpu_seconds:9.2f}"
              f" {m.peak_mb:9.0f} {m.requests:9d}")
    full = results["chatsync sync --full-refresh"]
    startup = results["chatsync start-up (empty API)"].seconds
    floor = results["floor (fetch only)"].seconds
    incremental = results["chatsync sync after 1% changed"]
    print(f"(full - start-up) / floor:         {(full.seconds - startup) / floor:6.2f}   target <= 1.5")
    # Whatever overlaps with what, the cores cannot do the work in less than its CPU time over
    # their number: the part of the gap to the floor that is CPU, not waiting.
    work_cpu = (full.cpu_seconds - results["chatsync start-up (empty API)"].cpu_seconds
                + full.simulator_cpu_seconds)
    cores = os.cpu_count() or 1
    print(f"CPU of the full sync less start-up, with the simulator's: {work_cpu:.1f} s, so at least"
          f" {work_cpu / cores:.1f} s on {cores} cores (the target allows {1.5 * floor:.1f} s)")
    # Start-up creates a fresh warehouse; an incremental run opens one, and may take less time.
    beyond = incremental.seconds - startup
    within = "" if beyond > 0 else f" (no longer than start-up: {beyond:+.2f} s)"
    print(f"incremental / full (less start-up): {max(beyond, 0.0) / max(full.seconds - startup, 1e-9):6.3f}"
          f"   requests {incremental.requests / full.requests:6.3f}   target < 0.05{within}")
    if "dlt rest_api" in results:
        print(f"dlt / chatsync full (wall):        {results['dlt rest_api'].seconds / full.seconds:6.2f}   target >= 3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--skip-dlt", action="store_true")
    args = parser.parse_args()
    with_dlt = not args.skip_dlt
    if with_dlt:
        try:
            import dlt  # noqa: F401
        except ImportError:
            print("dlt is not installed (pip install 'dlt[duckdb]'); measuring without it")
            with_dlt = False
    work = Path(tempfile.mkdtemp(prefix="chatsync-bench-"))
    all_results = {}
    try:
        for name in args.sizes.split(","):
            all_results[name] = bench_size(name, args.repeat, with_dlt, work)
            report(name, all_results[name])
        if {"small", "large"} <= set(all_results):
            small = all_results["small"]["chatsync sync --full-refresh"].peak_mb
            large = all_results["large"]["chatsync sync --full-refresh"].peak_mb
            print(f"\npeak memory large / small: {large / small:.2f}   target <= 1.3 and large < 400 MB")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
