"""The server-wide compute slots engine threads take per decode step: bounded and first come, first served."""

from __future__ import annotations

import itertools
import threading
import time

import pytest

from serving_core.compute import ComputeSlots


def test_waiters_get_the_slot_in_arrival_order() -> None:
    slots = ComputeSlots(1)
    order: list[str] = []
    slots.acquire()  # held by the "test" thread

    def worker(name: str) -> None:
        with slots.held():
            order.append(name)

    threads = []
    for name in ("b", "c", "d"):
        t = threading.Thread(target=worker, args=(name,))
        t.start()
        threads.append(t)
        time.sleep(0.05)  # let each one queue up before the next arrives
    slots.release()
    for t in threads:
        t.join(5)
    assert order == ["b", "c", "d"]


def test_a_thread_that_releases_and_reacquires_does_not_starve_a_waiter() -> None:
    # What an engine loop does every step; with threading.Semaphore the looping thread usually
    # wins again before the waiter wakes up.
    slots = ComputeSlots(1)
    turns: list[str] = []
    stop = threading.Event()

    def loop(name: str) -> None:
        while not stop.is_set():
            with slots.held():
                turns.append(name)
                time.sleep(0.001)

    a = threading.Thread(target=loop, args=("a",))
    b = threading.Thread(target=loop, args=("b",))
    a.start()
    time.sleep(0.02)
    b.start()
    time.sleep(0.3)
    stop.set()
    a.join(5)
    b.join(5)
    after_b = turns[turns.index("b"):]
    # Once b waits, the two alternate: neither gets two turns in a row.
    assert all(x != y for x, y in itertools.pairwise(after_b)), after_b[:20]
    assert after_b.count("b") >= 10


def test_at_most_n_holders() -> None:
    slots = ComputeSlots(2)
    inside = 0
    peak = 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal inside, peak
        with slots.held():
            with lock:
                inside += 1
                peak = max(peak, inside)
            time.sleep(0.02)
            with lock:
                inside -= 1

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert peak == 2


def test_zero_slots_is_refused() -> None:
    with pytest.raises(ValueError):
        ComputeSlots(0)


def test_threads_and_event_loop_tasks_share_one_pool_in_arrival_order() -> None:
    # One pool per server: an engine thread's decode step and a guarded ASR/OCR call exclude each
    # other, and whoever queued first is served first.
    import asyncio

    slots = ComputeSlots(1)
    order: list[str] = []

    async def main() -> None:
        slots.acquire()  # an engine thread's step holds the only slot
        task = asyncio.create_task(_take(slots, "task", order))
        await asyncio.sleep(0.05)  # the task queues first ...
        thread = threading.Thread(target=lambda: (slots.acquire(), order.append("thread"), slots.release()))
        thread.start()
        await asyncio.sleep(0.05)  # ... then a thread
        assert order == []  # neither got in while the slot was held
        slots.release()
        await task
        await asyncio.to_thread(thread.join, 5)

    asyncio.run(main())
    assert order == ["task", "thread"]
    assert slots.free == 1


async def _take(slots: ComputeSlots, name: str, order: list[str]) -> None:
    async with slots.held_async():
        order.append(name)


def test_a_cancelled_task_waiter_leaves_the_queue_and_loses_no_slot() -> None:
    import asyncio

    slots = ComputeSlots(1)

    async def main() -> None:
        slots.acquire()
        waiter = asyncio.create_task(slots.acquire_async())
        await asyncio.sleep(0.02)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        slots.release()
        # The slot is free again, not handed to the cancelled waiter and lost.
        await asyncio.wait_for(slots.acquire_async(), 1)
        slots.release()

    asyncio.run(main())
    assert slots.free == 1
