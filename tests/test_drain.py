"""The drain gate in-process: what a draining server answers (the signal path is in test_shutdown.py)."""

from __future__ import annotations

import asyncio

from inprocess_app import client

from serving_core.drain import Drain


def test_a_draining_server_refuses_new_work_and_says_so_on_readiness() -> None:
    with client() as c:
        assert c.get("/health/ready").status_code == 200
        c.app.state.drain.begin()
        ready = c.get("/health/ready")
        assert ready.status_code == 503 and ready.json()["status"] == "draining"
        assert c.get("/health/live").status_code == 200 and c.get("/health").status_code == 200
        assert c.get("/metrics").status_code == 200
        r = c.post("/v1/echo", json={})
        assert r.status_code == 503 and r.json()["error"]["code"] == "shutting_down"
        assert int(r.headers["Retry-After"]) >= 1


def test_wait_idle_ends_when_the_last_request_leaves_or_at_the_grace() -> None:
    async def run() -> tuple[bool, bool]:
        drain = Drain(grace_seconds=5)
        drain._enter()
        asyncio.get_running_loop().call_later(0.05, drain._leave)
        done = await drain.wait_idle()
        short = Drain(grace_seconds=0.05)
        short._enter()
        return done, await short.wait_idle()

    assert asyncio.run(run()) == (True, False)
