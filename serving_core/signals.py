"""How the servers react to SIGTERM and SIGINT (stdlib only: installed before anything is imported)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType
from typing import Any


class ShutdownSignals:
    """SIGTERM and SIGINT for the whole life of the process.

    While uvicorn serves, its own handlers run a graceful shutdown; afterwards uvicorn re-raises
    the signal it caught. Python's default actions would then kill the process (SIGTERM) or raise
    KeyboardInterrupt inside the finished event loop, cancelling whatever task is still winding
    down; here that re-raised signal is only recorded, for the exit code. Before uvicorn took over,
    a signal is recorded too and acted on at the next step of start-up — never raised: an exception
    raised from a signal handler can land anywhere (inside an import it made CPython exit by SIGINT,
    status -2, even though it was caught; library code can swallow it and leave the server running).
    Once the uvicorn server exists, it is told to shut down as soon as it has started.
    """

    def __init__(self) -> None:
        self.server: Any = None  # the uvicorn.Server once built
        self.received: list[int] = []
        self.on_signal: Callable[[int], None] | None = None  # told of every signal (the shutdown watchdog)

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._handle)

    @property
    def stopping(self) -> bool:
        return bool(self.received)

    def attach(self, server: Any) -> None:
        """From now on a signal shuts ``server`` down (right after it starts, if it came before)."""
        self.server = server
        if self.stopping:
            server.should_exit = True

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)
        if self.on_signal is not None:
            self.on_signal(signum)
        if self.server is not None:
            self.server.should_exit = True

    def exit_code(self) -> int:
        """130 after Ctrl-C (the shell's convention), 0 after SIGTERM, 3 if uvicorn never started."""
        if signal.SIGINT in self.received:
            return 130
        if self.stopping:
            return 0
        return 0 if self.server is not None and self.server.started else 3  # 3: e.g. the port is taken
