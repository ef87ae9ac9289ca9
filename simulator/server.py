"""Serves one or more Simulators over real HTTP on loopback, from a background thread."""

from __future__ import annotations

import socket
import threading
from types import TracebackType

import uvicorn

from simulator.app import SimulatorApp
from simulator.store import Simulator

START_TIMEOUT = 15.0


class _Server(uvicorn.Server):
    """uvicorn's server, announcing through an Event when it accepts connections."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


class SimulatorServer:
    """`with SimulatorServer(sim) as server:` serves both APIs until the block ends.

    `SimulatorServer(sim_a, sim_b, ...)` serves several orgs at one address, each request going
    to the simulator its API key and path select (see `SimulatorApp`); `sim` is the first.
    The socket is bound here rather than by uvicorn so that port 0 yields a known free port
    before the server thread starts.
    """

    def __init__(self, sim: Simulator, *more_sims: Simulator, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.app = SimulatorApp(sim, *more_sims)
        self.sim = sim
        self.sims: tuple[Simulator, ...] = self.app.sims
        self.host = host
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._server: _Server | None = None
        self.port = port

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def cozmox_url(self) -> str:
        return self.url + "/cozmox"

    @property
    def invent_url(self) -> str:
        return self.url + "/invent"

    @property
    def started(self) -> bool:
        return self._server is not None and self._server.started

    def start(self) -> SimulatorServer:
        # proto must be IPPROTO_TCP: asyncio only disables Nagle on such sockets, and without
        # that every small response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self._sock, self.port = sock, sock.getsockname()[1]
        config = uvicorn.Config(self.app, log_level="warning", access_log=False,
                                lifespan="off", http="h11", loop="asyncio", ws="none",
                                server_header=False, timeout_graceful_shutdown=2)
        self._server = server = _Server(config)
        self.app.closing = False
        self._thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]},
                                        name=f"simulator-{self.port}", daemon=True)
        self._thread.start()
        waited = 0.0
        while not server.ready.wait(0.05):
            waited += 0.05
            if not self._thread.is_alive() or waited > START_TIMEOUT:
                self.stop()
                raise RuntimeError(f"the simulator server did not start on {self.url}")
        return self

    def stop(self) -> None:
        self.app.closing = True
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._sock is not None:
            self._sock.close()
        self._thread = self._server = self._sock = None

    def __enter__(self) -> SimulatorServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
