"""Who keeps a connection when there are too many: the connection book of one HTTP server.

A server that caps its connections and answers the rest with 503 is taken down by anyone who
opens that many idle sockets (or trickles request bodies into them): the cap protects memory,
but every real client and every health probe is then refused. Here the cap decides who is
*dropped*, not who is refused: when a new connection takes the count over ``max_connections``,
the connection that has wasted a slot the longest is closed to make room: of those that have not
sent a complete request head yet (a new connection, a slowloris), those kept alive waiting for
their next request, and those whose request body has stalled (no byte for half a second) or
arrives slower than ``min_body_rate`` (judged after a second), the one that entered that state
first. A new connection is the last candidate — a real client sends its request at once and is
out of reach before its turn comes; one whose bytes wait unread in the kernel is passed over —
and a connection whose request is running (its body complete) is never dropped. A request that
arrives over the cap makes room the same way before it would be refused. Only when nothing
can be dropped does a request get 503 + ``Retry-After`` — and never a health probe: ``/health``,
``/health/live`` and ``/health/ready`` are answered whatever the count, so an orchestrator does
not restart a server that is only being flooded. Idle timeouts (the request head's deadline and
the keep-alive) shrink as the count approaches the cap, so idle sockets make room sooner.

This module knows nothing of uvicorn: ``serving_core.http_server`` drives it from the protocol.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections import Counter
from dataclasses import dataclass
from typing import Protocol

# Routes answered even over the cap: what liveness/readiness probes, load balancers and
# Prometheus ask (cheap, and the way an operator sees what is happening).
ALWAYS_ANSWERED = frozenset({"/health", "/health/live", "/health/ready", "/health/startup", "/metrics"})

# Below this share of the cap, timeouts are as configured; above it they shrink linearly, down to
# MIN_TIMEOUT_SHARE of themselves at the cap (never below MIN_TIMEOUT_SECONDS).
PRESSURE_START = 0.5
MIN_TIMEOUT_SHARE = 0.1
MIN_TIMEOUT_SECONDS = 0.5
# A body is judged slow only after this long (every body starts at 0 bytes), stalled after this
# long without a byte (a client sending its body sends it without pauses).
SLOW_BODY_GRACE_SECONDS = 1.0
STALLED_BODY_SECONDS = 0.5
# How many of a phase's oldest connections are looked at (one ioctl each) for one that sent nothing.
_UNREAD_SCAN = 64


def overflow_allowance(max_connections: int) -> int:
    """Over the cap with nothing to drop, new connections are still accepted up to this many more
    (so that a probe can get in and be answered); past that they are closed at once."""
    return max(16, max_connections // 10)


class Phase(enum.Enum):
    """Where a connection is in its current request."""

    AWAITING_FIRST_HEAD = "awaiting_first_head"  # no request finished on it yet; head incomplete
    IDLE = "idle"  # kept alive after a response; the next request's head is not complete
    BODY = "body"  # head received, request body still arriving
    BUSY = "busy"  # the request is complete and being answered


# Phases whose connections may be dropped to make room (BODY only when slow); BUSY never is.
_WAITING = (Phase.AWAITING_FIRST_HEAD, Phase.IDLE)


class Droppable(Protocol):
    """A connection as the book sees it (the HTTP protocol object)."""

    def body_stalled(self, now: float, min_rate: float) -> bool:
        """Its request body has stopped arriving for a moment, or arrives slower than ``min_rate``."""
        ...

    def drop(self, reason: str) -> None:
        """Close the connection (answering 408 where a request is half-sent)."""
        ...

    def has_unread_data(self) -> bool:
        """Bytes wait in the kernel that the server has not read yet (a request is arriving)."""
        ...


@dataclass(frozen=True)
class ConnectionPolicy:
    max_connections: int
    header_timeout: float
    keep_alive: float
    body_timeout: float
    min_body_rate: float  # bytes/s: each this many bytes extend the body deadline by a second
    max_header_bytes: int


class ConnectionBook:
    """The open connections of one server, by phase, and what happened to the ones it closed.

    Runs on the event loop only (no locks). Each phase keeps its connections in the order they
    entered it, so "oldest first" is the first entry.
    """

    def __init__(self, policy: ConnectionPolicy) -> None:
        self.policy = policy
        self._phases: dict[Phase, dict[Droppable, None]] = {p: {} for p in Phase}
        self._phase_of: dict[Droppable, Phase] = {}
        self._since: dict[Droppable, float] = {}  # when it entered its phase
        self.accepted = 0
        # Connections the server closed or refused, by reason (exposed on /metrics).
        self.closed: Counter[str] = Counter()

    # -- bookkeeping ---------------------------------------------------------------------------

    @property
    def open(self) -> int:
        return len(self._phase_of)

    def count(self, phase: Phase) -> int:
        return len(self._phases[phase])

    def opened(self, conn: Droppable, now: float | None = None) -> bool:
        """Register a new connection; make room if it takes the count over the cap. False when the
        count is past the cap's overflow allowance even so: the caller closes it at once."""
        self.accepted += 1
        if self.open >= self.policy.max_connections:
            self._make_room(self.open + 1 - self.policy.max_connections, now)
        if self.open >= self.policy.max_connections + overflow_allowance(self.policy.max_connections):
            self.closed["over_limit_at_accept"] += 1
            return False
        self._enter(conn, Phase.AWAITING_FIRST_HEAD, now)
        return True

    def move(self, conn: Droppable, phase: Phase, now: float | None = None) -> None:
        if self._phase_of.get(conn) is not phase and conn in self._phase_of:
            del self._phases[self._phase_of[conn]][conn]
            self._enter(conn, phase, now)

    def forget(self, conn: Droppable) -> None:
        phase = self._phase_of.pop(conn, None)
        if phase is not None:
            del self._phases[phase][conn]
            del self._since[conn]

    def _enter(self, conn: Droppable, phase: Phase, now: float | None = None) -> None:
        self._phase_of[conn] = phase
        self._phases[phase][conn] = None
        self._since[conn] = time.monotonic() if now is None else now

    # -- decisions -----------------------------------------------------------------------------

    @property
    def over_limit(self) -> bool:
        return self.open > self.policy.max_connections

    def refuses(self, path: str, now: float | None = None) -> bool:
        """Whether a request for ``path`` gets 503 now: over the cap with nothing that could be
        dropped to make room, unless it is a health probe or a scrape."""
        if self.over_limit:
            self._make_room(self.open - self.policy.max_connections, now)
        if self.over_limit and path not in ALWAYS_ANSWERED:
            self.closed["over_limit"] += 1
            return True
        return False

    def scaled(self, seconds: float) -> float:
        """An idle timeout under the current load: as configured up to PRESSURE_START of the cap,
        then shrinking linearly to MIN_TIMEOUT_SHARE of it at the cap."""
        occupancy = self.open / self.policy.max_connections
        if occupancy <= PRESSURE_START:
            return seconds
        pressure = min(1.0, (occupancy - PRESSURE_START) / (1 - PRESSURE_START))
        share = 1 - (1 - MIN_TIMEOUT_SHARE) * pressure
        return max(min(seconds, MIN_TIMEOUT_SECONDS), seconds * share)

    def body_deadline(self, received: int) -> float:
        """Seconds a body may take so far: the body timeout, plus one per ``min_body_rate`` bytes."""
        return self.policy.body_timeout + received / self.policy.min_body_rate

    def _make_room(self, needed: int, now: float | None) -> None:
        now = time.monotonic() if now is None else now
        for _ in range(needed):
            victim = self._longest_wasting(now)
            if victim is None:
                return
            reason = f"dropped_{self._phase_of[victim].value}"
            if self._phase_of[victim] is Phase.BODY:
                reason = "dropped_slow_body"
            self.forget(victim)
            self.closed[reason] += 1
            victim.drop(reason)

    def _longest_wasting(self, now: float) -> Droppable | None:
        """The droppable connection that entered its phase first (see the module docstring).

        One whose request is already in the kernel, not read yet, is passed over: a connection
        storm accepts hundreds of connections in one go, before any of them is read, and a real
        client's, its request sent right after connecting, must not be taken for an idle one.
        """
        candidates = []
        for phase in _WAITING:
            waiting = (c for c in itertools.islice(self._phases[phase], _UNREAD_SCAN) if not c.has_unread_data())
            first = next(waiting, None)
            if first is not None:
                candidates.append(first)
        for conn in self._phases[Phase.BODY]:  # oldest body first: the first stalled one is the one
            if conn.body_stalled(now, self.policy.min_body_rate) and not conn.has_unread_data():
                candidates.append(conn)
                break
        return min(candidates, key=self._since.__getitem__, default=None)

    def snapshot(self) -> dict[str, int]:
        """Open connections by phase (for /metrics)."""
        return {p.value: len(self._phases[p]) for p in Phase}

