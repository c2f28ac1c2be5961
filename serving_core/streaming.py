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


def sse_typed_event(data: Any) -> str:
    """One event named by its own ``type`` field (``event: <type>`` + ``data:``), as Anthropic's and
    OpenAI's Responses streams are written; dicts and pydantic models are JSON-encoded."""
    if hasattr(data, "model_dump"):
        data = data.model_dump(mode="json")
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n"


SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
