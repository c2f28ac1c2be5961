"""API key, CORS and trusted hosts, in-process on the shared core (both servers use this code)."""

from __future__ import annotations

import pytest
from inprocess_app import FakeSettings, client

from serving_core.settings import ConfigError

KEY = "s3cret-key"


def test_without_a_key_setting_everything_is_open() -> None:
    with client() as c:
        assert c.post("/v1/echo", json={"x": 1}).status_code == 200


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"X-API-Key": "wrong"},
                                     {"Authorization": f"Basic {KEY}"}, {"Authorization": "Bearer "}])
def test_a_missing_or_wrong_key_is_401_in_the_openai_shape(headers: dict[str, str]) -> None:
    with client(api_key=KEY) as c:
        r = c.post("/v1/echo", json={"x": 1}, headers=headers)
        assert r.status_code == 401
        assert r.headers["www-authenticate"] == "Bearer"
        err = r.json()["error"]
        assert err["code"] == "invalid_api_key" and err["type"] == "invalid_request_error"
        assert KEY not in r.text


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {KEY}"}, {"authorization": f"bearer {KEY}"},
                                     {"X-API-Key": KEY}])
def test_the_right_key_in_either_header_passes(headers: dict[str, str]) -> None:
    with client(api_key=KEY) as c:
        assert c.post("/v1/echo", json={"x": 1}, headers=headers).status_code == 200
        assert c.get("/models", headers=headers).status_code == 200


def test_health_and_docs_stay_public_models_and_metrics_do_not() -> None:
    with client(api_key=KEY) as c:
        for path in ("/health", "/health/live", "/health/ready", "/health/startup", "/openapi.json", "/docs", "/"):
            assert c.get(path).status_code == 200, path
        assert c.get("/models").status_code == 401
        assert c.get("/v1/models").status_code == 401
        assert c.get("/metrics").status_code == 401
    with client(api_key=KEY, metrics_require_api_key=False) as c:
        assert c.get("/metrics").status_code != 401


def test_cors_preflight_answers_per_policy() -> None:
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,content-type"}
    with client() as c:  # CORS off: a clear 403, not a 405 from the route
        r = c.options("/v1/echo", headers=preflight)
        assert r.status_code == 403 and r.json()["error"]["code"] == "cors_disabled"
        assert "access-control-allow-origin" not in r.headers
    with client(cors_origins=["https://app.example"], api_key=KEY) as c:
        r = c.options("/v1/echo", headers=preflight)  # no key in a preflight: still answered
        assert r.status_code == 200
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        other = c.options("/v1/echo", headers={**preflight, "Origin": "https://evil.example"})
        assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
        real = c.post("/v1/echo", json={}, headers={"Origin": "https://app.example", "X-API-Key": KEY})
        assert real.status_code == 200 and real.headers["access-control-allow-origin"] == "https://app.example"


def test_wildcard_origin_with_credentials_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="cors_allow_credentials"):
        FakeSettings(cors_origins=["*"], cors_allow_credentials=True)


def test_an_empty_api_key_is_a_config_error() -> None:
    with pytest.raises((ValueError, ConfigError), match="api_key"):
        FakeSettings(api_key="  ")


def test_untrusted_host_headers_are_refused() -> None:
    with client(trusted_hosts=["127.0.0.1", "localhost", "*.models.internal", "::1"]) as c:
        assert c.get("/health").status_code == 200
        for host in ("localhost:8001", "gguf.models.internal", "[::1]:8001"):
            assert c.get("/health", headers={"Host": host}).status_code == 200, host
        for host in ("attacker.example", "models.internal.attacker.example", "localhost.attacker.example"):
            r = c.get("/health", headers={"Host": host})
            assert r.status_code == 400 and r.json()["error"]["code"] == "untrusted_host", host


def test_the_default_bind_address_is_loopback() -> None:
    assert FakeSettings().host == "127.0.0.1"
