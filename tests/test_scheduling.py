"""The per-model guard and the server-wide compute slots."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

import pytest

from serving_core.compute import ComputeSlots
from serving_core.errors import Overloaded, ServerShuttingDown
from serving_core.scheduling import ModelGuard


class Overlap:
    """A model call that records how many calls were inside at once (``peak``); ``inside`` runs in
    the middle of each (e.g. a barrier that only several calls at once can pass)."""

    def __init__(self, inside: Callable[[], object] = lambda: None) -> None:
        self.active = self.peak = 0
        self._lock = threading.Lock()
        self._inside = inside

    def __call__(self) -> None:
        with self._lock:
            self.active += 1
            self.peak = max(self.peak, self.active)
        self._inside()
        time.sleep(0.02)
        with self._lock:
            self.active -= 1


def test_one_call_at_a_time_per_model() -> None:
    async def main() -> int:
        guard = ModelGuard("m", max_waiting=10, compute=ComputeSlots(4))
        call = Overlap()
        await asyncio.gather(*(guard.run(call) for _ in range(5)))
        return call.peak

    assert asyncio.run(main()) == 1


def test_a_model_with_workers_takes_that_many_calls_at_once_on_one_compute_slot() -> None:
    """Two calls meet inside the model (a barrier only two threads at once can pass), while the
    server's single compute slot is held once for both; a third call waits for a free worker."""

    async def main() -> tuple[int, int]:
        compute = ComputeSlots(1)
        guard = ModelGuard("w", max_waiting=10, compute=compute, concurrency=2)
        # BrokenBarrierError after 10 s unless a second call is inside too.
        call = Overlap(threading.Barrier(2, timeout=10).wait)
        await asyncio.gather(*(guard.run(call) for _ in range(4)))
        return call.peak, compute.free

    assert asyncio.run(main()) == (2, 1)


def test_a_model_does_not_keep_the_compute_slot_by_overlapping_its_calls() -> None:
    """While another model waits for the slot, a new call does not join its model's running one."""

    async def main() -> list[str]:
        compute = ComputeSlots(1)
        whisper = ModelGuard("whisper", max_waiting=10, compute=compute, concurrency=2)
        ocr = ModelGuard("ocr", max_waiting=10, compute=compute)
        order: list[str] = []

        def call(name: str, seconds: float) -> None:
            order.append(name)
            time.sleep(seconds)

        first = asyncio.ensure_future(whisper.run(call, "whisper-1", 0.3))
        await asyncio.sleep(0.05)
        waiting_ocr = asyncio.ensure_future(ocr.run(call, "ocr", 0.01))
        await asyncio.sleep(0.05)
        second = asyncio.ensure_future(whisper.run(call, "whisper-2", 0.01))
        await asyncio.gather(first, waiting_ocr, second)
        return order

    assert asyncio.run(main()) == ["whisper-1", "ocr", "whisper-2"]


def test_compute_slots_bound_calls_across_models() -> None:
    async def main() -> int:
        compute = ComputeSlots(1)
        guards = [ModelGuard(n, 10, compute) for n in "abc"]
        active = 0
        peak = 0
        lock = threading.Lock()

        def call() -> None:
            nonlocal active, peak
            with lock:
                active += 1
                peak = max(peak, active)
            time.sleep(0.02)
            with lock:
                active -= 1

        await asyncio.gather(*(g.run(call) for g in guards for _ in range(2)))
        return peak

    assert asyncio.run(main()) == 1


def test_queue_overflow_raises_429_with_retry_after() -> None:
    async def main() -> list[object]:
        guard = ModelGuard("m", max_waiting=2, compute=ComputeSlots(1))
        return await asyncio.gather(*(guard.run(time.sleep, 0.1) for _ in range(5)), return_exceptions=True)

    results = asyncio.run(main())
    overloaded = [r for r in results if isinstance(r, Overloaded)]
    assert len(overloaded) == 2  # 1 running + 2 waiting admitted
    assert overloaded[0].status_code == 429 and "Retry-After" in overloaded[0].headers()


def test_retry_after_is_estimated_from_the_queue_and_call_times() -> None:
    async def main() -> tuple[Overloaded, float | None]:
        guard = ModelGuard("m", max_waiting=2, compute=ComputeSlots(1))
        await guard.run(time.sleep, 0.01)
        measured = guard.call_times.mean
        guard.call_times.mean = 7.0  # as if each call took 7 s
        release = asyncio.Event()
        holder = asyncio.create_task(_hold(guard, release))
        waiters = [asyncio.create_task(_hold(guard, release)) for _ in range(2)]
        await asyncio.sleep(0.05)
        with pytest.raises(Overloaded) as info:
            guard.check_admission()
        release.set()
        await asyncio.gather(holder, *waiters)
        return info.value, measured

    refused, measured = asyncio.run(main())
    assert measured is not None and measured > 0
    # Two callers wait ahead, one runs: the newcomer's turn comes after about three 7 s calls.
    assert refused.headers()["Retry-After"] == "21"
    assert "21 s" in refused.message


async def _hold(guard: ModelGuard, release: asyncio.Event) -> None:
    async with guard.slot():
        await release.wait()


def test_closed_guard_refuses_new_calls_and_waits_for_running_ones() -> None:
    entered = threading.Event()
    leave = threading.Event()

    def call() -> str:
        entered.set()
        leave.wait(5)
        return "done"

    async def main() -> tuple[bool, bool, str, bool]:
        guard = ModelGuard("m", 10, ComputeSlots(1))
        running = asyncio.create_task(guard.run(call))
        await asyncio.to_thread(entered.wait, 5)
        guard.close()
        busy = not await asyncio.to_thread(guard.wait_idle, 0.05)
        with pytest.raises(ServerShuttingDown):
            await guard.run(call)
        leave.set()
        idle = await asyncio.to_thread(guard.wait_idle, 5)
        return busy, idle, await running, guard.threads_inside == 0

    busy, idle, result, none_inside = asyncio.run(main())
    assert busy and idle and result == "done" and none_inside


def test_a_server_runs_more_blocking_calls_at_once_than_asyncio_defaults_to() -> None:
    """Model calls run in the loop's default executor; asyncio's own (cores + 4 threads, 6 here) held the
    seventh of eight requests a batching Whisper model takes at once outside the batch."""
    from concurrent.futures import ThreadPoolExecutor

    from fastapi import APIRouter
    from fastapi.testclient import TestClient
    from inprocess_app import FakeSettings

    from serving_core.app import EXECUTOR_THREADS, create_model_app
    from serving_core.registry_settings import registry_from_settings

    n = 12
    assert n <= EXECUTOR_THREADS
    barrier = threading.Barrier(n, timeout=30)  # passed only by n calls in threads at once
    router = APIRouter()

    @router.post("/v1/together")
    async def together() -> dict[str, int]:
        return {"arrived": await asyncio.to_thread(barrier.wait)}

    cfg = FakeSettings()
    app = create_model_app(cfg, registry_from_settings(cfg, lambda spec: object()), title="t", routers=[router])
    with TestClient(app, base_url="http://127.0.0.1") as c, ThreadPoolExecutor(n) as pool:
        answers = list(pool.map(lambda _: c.post("/v1/together"), range(n)))
    assert [r.status_code for r in answers] == [200] * n
    assert sorted(r.json()["arrived"] for r in answers) == list(range(n))
