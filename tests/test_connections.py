"""The connection book's decisions (serving_core.connections), without sockets: who is dropped to
make room, who never is, when a request is refused, how idle deadlines shrink under pressure."""

from __future__ import annotations

import pytest

from serving_core.connections import ConnectionBook, ConnectionPolicy, Phase, overflow_allowance


class Conn:
    def __init__(self, name: str, rate: float | None = None) -> None:
        self.name = name
        self.rate = rate
        self.dropped: str | None = None
        self.unread = False

    def body_stalled(self, now: float, min_rate: float) -> bool:
        return self.rate is not None and self.rate < min_rate

    def drop(self, reason: str) -> None:
        self.dropped = reason

    def has_unread_data(self) -> bool:
        return self.unread

    def __repr__(self) -> str:
        return self.name


def _book(cap: int = 3) -> ConnectionBook:
    return ConnectionBook(ConnectionPolicy(max_connections=cap, header_timeout=10, keep_alive=5, body_timeout=20,
                                           min_body_rate=500, max_header_bytes=16384))


def test_the_connection_that_wasted_its_slot_longest_makes_room() -> None:
    book = _book(cap=3)
    trickler, idle, fresh = Conn("trickler", rate=0.2), Conn("idle"), Conn("fresh")
    book.opened(trickler, now=0)
    book.move(trickler, Phase.BODY, now=1)  # trickling its body since t=1
    book.opened(idle, now=2)
    book.move(idle, Phase.IDLE, now=3)  # kept alive since t=3
    book.opened(fresh, now=4)
    newcomer = Conn("newcomer")
    assert book.opened(newcomer, now=5)
    assert trickler.dropped == "dropped_slow_body" and idle.dropped is None and fresh.dropped is None
    assert book.open == 3
    assert book.opened(Conn("next"), now=6)
    assert idle.dropped == "dropped_idle" and fresh.dropped is None
    assert book.closed == {"dropped_slow_body": 1, "dropped_idle": 1}


def test_running_requests_and_bodies_arriving_fast_are_never_dropped() -> None:
    book = _book(cap=2)
    busy, uploading = Conn("busy"), Conn("uploading", rate=100_000)
    for i, c in enumerate((busy, uploading)):
        book.opened(c, now=i)
    book.move(busy, Phase.BUSY, now=2)
    book.move(uploading, Phase.BODY, now=2)
    extra = [Conn(f"extra{i}") for i in range(overflow_allowance(2) + 1)]
    results = [book.opened(c, now=10 + i) for i, c in enumerate(extra)]
    assert busy.dropped is None and uploading.dropped is None
    # Each newcomer is let in (a probe may be among them) and drops the one before it.
    assert all(results) and book.open == 3
    assert all(c.dropped == "dropped_awaiting_first_head" for c in extra[:-1]) and extra[-1].dropped is None


def test_over_the_cap_with_nothing_to_drop_only_probes_are_answered() -> None:
    book = _book(cap=1)
    busy = Conn("busy")
    book.opened(busy, now=0)
    book.move(busy, Phase.BUSY, now=0)
    late = Conn("late")
    book.opened(late, now=1)
    book.move(late, Phase.BUSY, now=1)  # its head arrived; now it asks for something
    assert book.over_limit
    assert book.refuses("/v1/chat/completions") and book.closed["over_limit"] == 1
    for path in ("/health", "/health/live", "/health/ready", "/metrics"):
        assert not book.refuses(path)


def test_past_the_overflow_allowance_a_connection_is_refused_at_once() -> None:
    book = _book(cap=1)
    for i in range(1 + overflow_allowance(1)):
        c = Conn(f"busy{i}")
        assert book.opened(c, now=i)
        book.move(c, Phase.BUSY, now=i)
    assert not book.opened(Conn("one too many"), now=100)
    assert book.closed["over_limit_at_accept"] == 1


@pytest.mark.parametrize(("open_", "expected"), [(0, 10.0), (50, 10.0), (75, 5.5), (100, 1.0), (120, 1.0)])
def test_idle_deadlines_shrink_as_the_cap_nears(open_: int, expected: float) -> None:
    book = _book(cap=100)
    for i in range(open_):
        c = Conn(str(i))
        book.opened(c, now=i)
        book.move(c, Phase.BUSY)
    assert book.scaled(10.0) == pytest.approx(expected)
    assert book.scaled(0.2) == pytest.approx(0.2)  # never longer than configured


def test_a_body_may_take_longer_the_more_it_has_sent() -> None:
    book = _book()
    assert book.body_deadline(0) == 20
    assert book.body_deadline(5000) == 30  # one more second per 500 bytes


def test_a_connection_whose_request_waits_unread_is_not_taken_for_idle() -> None:
    book = _book(cap=2)
    real, idle = Conn("real"), Conn("idle")
    book.opened(real, now=0)
    book.opened(idle, now=1)
    real.unread = True  # its request arrived; the event loop has not read it yet
    book.opened(Conn("newcomer"), now=2)
    assert real.dropped is None and idle.dropped == "dropped_awaiting_first_head"
