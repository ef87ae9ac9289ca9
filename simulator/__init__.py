"""A seeded, in-process stand-in for the Cozmox and Invent APIs, served on loopback.

Used by the test-suite, by `chatsync demo` and by the benchmarks: it behaves like the documented
APIs, and misbehaves on demand (see `Fault`).
"""

from simulator.faults import Fault, RequestInfo
from simulator.server import SimulatorServer
from simulator.store import Simulator

__all__ = ["Fault", "RequestInfo", "Simulator", "SimulatorServer"]
