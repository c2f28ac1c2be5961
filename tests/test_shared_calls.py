"""Calls that queue while a model is busy run together as one batch (asr/shared_calls.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from concurrent.futures import ThreadPoolExecutor

import pytest

from asr_ocr_model_server.asr.shared_calls import SharedCalls
from asr_ocr_model_server.backend_options import FasterWhisperOptions


class Recorder:
    """A ``run`` that records each batch and holds the first one until released."""

    def __init__(self) -> None:
        self.batches: list[tuple[Hashable, list[str]]] = []
        self.release = threading.Event()
        self.running = 0
        self.most_running = 0
        self._lock = threading.Lock()

    def __call__(self, key: Hashable, payloads: list[str]) -> list[str]:
        with self._lock:
            self.batches.append((key, list(payloads)))
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if not self.release.wait(30):
                raise TimeoutError("never released")
            if "boom" in payloads:
                raise ValueError("bad batch")
            return [p.upper() for p in payloads]
        finally:
            with self._lock:
                self.running -= 1


def wait_for(cond, timeout: float = 30.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.005)


def pending(calls: SharedCalls) -> int:
    return len(calls._pending)


def start_held(pool: ThreadPoolExecutor, calls: SharedCalls, run: Recorder, first: tuple[Hashable, str]):
    """Submit ``first`` and wait until it runs (and is held there)."""
    fut = pool.submit(calls.call, *first)
    wait_for(lambda: len(run.batches) == 1)
    return fut


def test_calls_that_queue_while_one_runs_go_as_one_batch() -> None:
    run = Recorder()
    calls: SharedCalls[str, str] = SharedCalls(run, max_items=8)
    with ThreadPoolExecutor(4) as pool:
        first = start_held(pool, calls, run, ("k", "a"))
        rest = [pool.submit(calls.call, "k", p) for p in "bcd"]
        wait_for(lambda: pending(calls) == 3)
        run.release.set()
        assert first.result(30) == "A" and [f.result(30) for f in rest] == ["B", "C", "D"]
    assert [sorted(p) for _, p in run.batches] == [["a"], ["b", "c", "d"]]
    assert (calls.batches, calls.calls) == (2, 4)


def test_only_calls_of_one_kind_share_a_batch_and_a_batch_holds_at_most_max_items() -> None:
    run = Recorder()
    calls: SharedCalls[str, str] = SharedCalls(run, max_items=2)
    with ThreadPoolExecutor(6) as pool:
        first = start_held(pool, calls, run, ("k", "a"))
        futs = [pool.submit(calls.call, key, p) for key, p in [("k", "b"), ("other", "x"), ("k", "c"), ("k", "d")]]
        wait_for(lambda: pending(calls) == 4)
        run.release.set()
        assert [f.result(30) for f in [first, *futs]] == ["A", "B", "X", "C", "D"]
    assert [(k, sorted(p)) for k, p in run.batches] == [("k", ["a"]), ("k", ["b", "c"]), ("other", ["x"]),
                                                       ("k", ["d"])]


def test_a_call_bigger_than_a_batch_still_runs_alone() -> None:
    run = Recorder()
    run.release.set()
    calls: SharedCalls[str, str] = SharedCalls(run, max_items=2)
    assert calls.call("k", "big", items=5) == "BIG"


def test_a_failed_batch_fails_its_callers_only() -> None:
    run = Recorder()
    calls: SharedCalls[str, str] = SharedCalls(run, max_items=8)
    with ThreadPoolExecutor(4) as pool:
        first = start_held(pool, calls, run, ("k", "a"))
        bad = [pool.submit(calls.call, "bad", p) for p in ["boom", "y"]]
        wait_for(lambda: pending(calls) == 2)
        run.release.set()
        assert first.result(30) == "A"
        for f in bad:
            with pytest.raises(ValueError, match="bad batch"):
                f.result(30)
        assert calls.call("k", "z") == "Z"  # the model goes on serving


def test_slots_let_that_many_batches_run_at_once() -> None:
    run = Recorder()
    calls: SharedCalls[str, str] = SharedCalls(run, max_items=1, slots=2)
    with ThreadPoolExecutor(3) as pool:
        futs = [pool.submit(calls.call, "k", p) for p in "abc"]
        wait_for(lambda: len(run.batches) == 2)
        time.sleep(0.05)
        assert len(run.batches) == 2  # the third waits for a slot
        run.release.set()
        assert [f.result(30) for f in futs] == ["A", "B", "C"]
    assert run.most_running == 2


def test_calls_let_into_a_faster_whisper_model_follow_its_batches() -> None:
    assert FasterWhisperOptions().calls_at_once() == 8
    assert FasterWhisperOptions(batch_requests=False).calls_at_once() == 1
    assert FasterWhisperOptions(workers=2, batch_size=4).calls_at_once() == 8
