"""Anthropic's Messages API as a translation over the chat serving: a request becomes a chat
completion request (the one generation path), the chat's answer becomes Anthropic's message or
its stream of events."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from gguf_model_server.api.anthropic_messages.protocol import (
    ContentBlock,
    CountTokensRequest,
    MessagesRequest,
    MessagesResponse,
    MessagesUsage,
    StopReason,
    TextBlockOut,
    ToolUseBlockOut,
)
from gguf_model_server.api.chat_completion.answer import ChoiceEnd, TextDelta
from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest, ResponseToolCall
from gguf_model_server.api.generation import Admitted, GenerationStream
from gguf_model_server.api.translation import ChatTranslation, chat_request
from gguf_model_server.engine import GenerationStats
from serving_core.errors import BadRequest, echo
from serving_core.streaming import StreamFraming, sse_typed_event

log = logging.getLogger("gguf_model_server.api.anthropic_messages")

_ANTHROPIC_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                    404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
                    503: "overloaded_error"}


def anthropic_error(status: int, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The one error shape as Anthropic's ``{"type": "error", "error": {"type", "message"}}`` (a
    request Anthropic would call invalid is a 400 there, where the other routes answer 422)."""
    status = 400 if status == 422 else status
    error = body.get("error", {})
    kind = _ANTHROPIC_TYPES.get(status, "invalid_request_error" if status < 500 else "api_error")
    return status, {"type": "error", "error": {"type": kind, "message": error.get("message", "error")}}


def _text_of(blocks: str | list[ContentBlock] | None, where: str) -> str:
    if blocks is None or isinstance(blocks, str):
        return blocks or ""
    for j, block in enumerate(blocks):
        if block.type != "text" or block.text is None:
            raise BadRequest(f"{where}.{j}: only text blocks are read here (got '{echo(block.type)}')",
                             param=f"{where}.{j}")
    return "".join(block.text or "" for block in blocks)


def _unsupported(block: ContentBlock, where: str) -> BadRequest:
    what = {"image": "image input", "document": "document input", "thinking": "thinking blocks",
            "redacted_thinking": "thinking blocks", "search_result": "search results"}.get(
        block.type, f"content block type '{echo(block.type)}'")
    return BadRequest(f"not supported: {what} ({where}: the models here read text only); send text, tool_use "
                      "or tool_result blocks", param=where)


def _chat_messages(req: CountTokensRequest) -> list[dict[str, Any]]:
    """Anthropic's system and messages as chat completion messages: ``tool_use`` blocks become the
    assistant's ``tool_calls``, ``tool_result`` blocks ``tool`` messages (before the user's text)."""
    out: list[dict[str, Any]] = []
    if req.system:
        out.append({"role": "system", "content": _text_of(req.system, "system")})
    for i, message in enumerate(req.messages):
        if isinstance(message.content, str):
            out.append({"role": message.role, "content": message.content})
            continue
        text: list[str] = []
        calls: list[dict[str, Any]] = []
        for j, block in enumerate(message.content):
            where = f"messages.{i}.content.{j}"
            if block.type == "text":
                text.append(block.text or "")
            elif block.type == "tool_use" and message.role == "assistant":
                if block.id is None or block.name is None:
                    raise BadRequest(f"{where}: a tool_use block needs 'id' and 'name'", param=where)
                calls.append({"id": block.id, "type": "function", "function": {
                    "name": block.name, "arguments": json.dumps(block.input or {}, ensure_ascii=False)}})
            elif block.type == "tool_result" and message.role == "user":
                if block.tool_use_id is None:
                    raise BadRequest(f"{where}: a tool_result block needs 'tool_use_id'", param=where)
                result = _text_of(block.content, f"{where}.content")
                out.append({"role": "tool", "tool_call_id": block.tool_use_id,
                            "content": f"Error: {result}" if block.is_error else result})
            elif block.type in ("tool_use", "tool_result"):
                raise BadRequest(f"{where}: a {block.type} block belongs in "
                                 f"{'an assistant' if block.type == 'tool_use' else 'a user'} message", param=where)
            else:
                raise _unsupported(block, where)
        if text or calls or not out or out[-1]["role"] != "tool":
            message_out: dict[str, Any] = {"role": message.role, "content": "".join(text)}
            if calls:
                message_out["tool_calls"] = calls
            out.append(message_out)
    return out


def _chat_tools(req: CountTokensRequest) -> dict[str, Any]:
    if req.thinking:
        log.info("ignoring 'thinking' (%s): the models here do not think aloud in blocks",
                 echo(req.thinking.get("type")))
    fields: dict[str, Any] = {}
    if req.tools:
        for i, tool in enumerate(req.tools):
            if tool.type not in (None, "custom"):
                raise BadRequest(f"not supported: server tool '{echo(tool.type)}' (tools.{i}): nothing here runs it; "
                                 "define client tools (name, description, input_schema)", param=f"tools.{i}")
        fields["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                              "parameters": t.input_schema}} for t in req.tools]
    choice = req.tool_choice
    if choice is not None:
        if choice.type == "tool":
            if choice.name is None:
                raise BadRequest("tool_choice: type 'tool' needs 'name'", param="tool_choice.name")
            fields["tool_choice"] = {"type": "function", "function": {"name": choice.name}}
        else:
            fields["tool_choice"] = {"auto": "auto", "any": "required", "none": "none"}[choice.type]
        fields["parallel_tool_calls"] = not choice.disable_parallel_tool_use
    return fields


def to_chat(req: MessagesRequest) -> ChatCompletionRequest:
    data: dict[str, Any] = {"model": req.model, "messages": _chat_messages(req), "max_tokens": req.max_tokens,
                            "temperature": req.temperature, "stop": req.stop_sequences, **_chat_tools(req)}
    if req.top_p is not None:
        data["top_p"] = req.top_p
    if req.top_k is not None:
        data["top_k"] = req.top_k
    if req.output_config is not None:
        if req.output_config.effort is not None:
            log.info("ignoring output_config.effort (%s)", echo(req.output_config.effort))
        if req.output_config.format is not None:
            data["response_format"] = {"type": "json_schema", "json_schema": {
                "name": "output", "schema": req.output_config.format.schema_}}
    return chat_request(data, {"stop": "stop_sequences", "response_format": "output_config"})


def stop_reason(finish_reason: str, stats: GenerationStats, req: MessagesRequest) -> tuple[StopReason, str | None]:
    """Anthropic's ``stop_reason`` and ``stop_sequence`` (only a client's own stop sequence is named)."""
    if finish_reason == "tool_calls":
        return "tool_use", None
    if finish_reason == "length":
        return "max_tokens", None
    if stats.stop_string is not None and stats.stop_string in (req.stop_sequences or ()):
        return "stop_sequence", stats.stop_string
    return "end_turn", None


def _tool_use(call: ResponseToolCall) -> ToolUseBlockOut:
    try:
        arguments = json.loads(call.function.arguments)
    except ValueError:
        arguments = {}
    return ToolUseBlockOut(id=call.id, name=call.function.name, input=arguments if isinstance(arguments, dict) else {})


def _usage(stats: GenerationStats) -> MessagesUsage:
    return MessagesUsage(input_tokens=stats.prompt_tokens, output_tokens=stats.completion_tokens,
                         cache_read_input_tokens=stats.cached_prompt_tokens)


def _event(type_: str, **fields: Any) -> dict[str, Any]:
    return {"type": type_, **fields}


ANTHROPIC_SSE = StreamFraming(
    media_type="text/event-stream", frame=sse_typed_event,
    error=lambda exc: anthropic_error(exc.status_code, {"error": {"message": exc.message}})[1])


class MessagesServing(ChatTranslation[MessagesRequest]):
    """``/v1/messages`` and ``/v1/messages/count_tokens`` over the chat serving."""

    def to_chat(self, req: MessagesRequest) -> ChatCompletionRequest:
        return to_chat(req)

    async def message(self, req: MessagesRequest, chat: ChatCompletionRequest, admitted: Admitted,
                      request: Request) -> MessagesResponse:
        answer = (await self.chat.answers(admitted, chat, request))[0]
        content: list[TextBlockOut | ToolUseBlockOut] = []
        if answer.content:
            content.append(TextBlockOut(text=answer.content))
        content.extend(_tool_use(call) for call in answer.tool_calls)
        reason, sequence = stop_reason(answer.finish_reason, answer.stats, req)
        return MessagesResponse(id=f"msg_{uuid.uuid4().hex}", model=admitted.model, content=content,
                                stop_reason=reason, stop_sequence=sequence, usage=_usage(answer.stats))

    def stream(self, req: MessagesRequest, chat: ChatCompletionRequest, admitted: Admitted) -> GenerationStream:
        async def events() -> AsyncIterator[dict[str, Any]]:
            yield _event("message_start", message=MessagesResponse(
                id=f"msg_{uuid.uuid4().hex}", model=admitted.model, content=[], stop_reason=None,
                usage=MessagesUsage(input_tokens=admitted.prompt_tokens, output_tokens=0)).model_dump(mode="json"))
            index, text_open = 0, False
            async for event in self.chat.answer_events(admitted, chat):
                if isinstance(event, TextDelta):
                    if not event.text:
                        continue
                    if not text_open:
                        yield _event("content_block_start", index=index, content_block={"type": "text", "text": ""})
                        text_open = True
                    yield _event("content_block_delta", index=index, delta={"type": "text_delta", "text": event.text})
                    continue
                if text_open:
                    yield _event("content_block_stop", index=index)
                    index, text_open = index + 1, False
                if isinstance(event, ChoiceEnd):
                    reason, sequence = stop_reason(event.finish_reason, event.stats, req)
                    yield _event("message_delta", delta={"stop_reason": reason, "stop_sequence": sequence},
                                 usage=_usage(event.stats).model_dump())
                    yield _event("message_stop")
                    continue
                block = _tool_use(event.call)
                yield _event("content_block_start", index=index,
                             content_block={"type": "tool_use", "id": block.id, "name": block.name, "input": {}})
                yield _event("content_block_delta", index=index,
                             delta={"type": "input_json_delta", "partial_json": json.dumps(block.input)})
                yield _event("content_block_stop", index=index)
                index += 1

        return GenerationStream(admitted, events(), ANTHROPIC_SSE)

    async def count_tokens(self, req: CountTokensRequest) -> int:
        data = {"model": req.model, "messages": _chat_messages(req), **_chat_tools(req)}
        return await self.chat.count_tokens(chat_request(data))

