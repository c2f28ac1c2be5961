"""Server-sent events framing."""

from __future__ import annotations

import json
from typing import Any


def sse_event(data: Any) -> str:
    """One ``data:`` event; dicts and pydantic models are JSON-encoded."""
    if hasattr(data, "model_dump_json"):
        payload = data.model_dump_json(exclude_none=False)
    elif isinstance(data, str):
        payload = data
    else:
        payload = json.dumps(data, separators=(",", ":"))
    return f"data: {payload}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
