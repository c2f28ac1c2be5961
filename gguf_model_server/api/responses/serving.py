"""OpenAI's Responses API as a translation over the chat serving: ``input`` items become chat
messages (the one generation path), the chat's answer becomes output items, or the Responses
event stream as the SDK's ``responses.stream()`` reads it."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from gguf_model_server.api.chat_completion.answer import ChatAnswer, ChoiceEnd, TextDelta
from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest, ResponseToolCall
from gguf_model_server.api.generation import Admitted, GenerationStream
from gguf_model_server.api.responses.protocol import (
    FunctionCallItem,
    IncompleteDetails,
    InputContent,
    InputItem,
    InputTokensDetails,
    OutputMessage,
    OutputText,
    Response,
    ResponsesRequest,
    ResponseUsage,
    Status,
)
from gguf_model_server.api.translation import ChatTranslation, chat_request
from gguf_model_server.engine import GenerationStats
from serving_core.errors import BadRequest, echo
from serving_core.streaming import StreamFraming, sse_typed_event

log = logging.getLogger("gguf_model_server.api.responses")

# Set to anything but these values, each would change the result: 400, never ignored. The first
# need what a stateless server lacks (stored responses, conversations, background jobs, stored prompts).
_NEEDS_STATE: dict[str, tuple[object, ...]] = {"previous_response_id": (None,), "conversation": (None,),
                                               "background": (None, False), "prompt": (None,)}
_NOT_SERVED: dict[str, tuple[object, ...]] = {"max_tool_calls": (None,), "top_logprobs": (None, 0)}


def _text(content: str | list[InputContent] | None, where: str) -> str:
    if content is None or isinstance(content, str):
        return content or ""
    for j, part in enumerate(content):
        if part.type not in ("input_text", "output_text", "text") or part.text is None:
            what = {"input_image": "image input", "input_file": "file input", "input_audio": "audio input"}.get(
                part.type, f"content type '{echo(part.type)}'")
            raise BadRequest(f"not supported: {what} ({where}.{j}: the models here read text only); send "
                             "input_text parts", param=f"{where}.{j}")
    return "".join(part.text or "" for part in content)


def _chat_messages(req: ResponsesRequest) -> list[dict[str, Any]]:
    """``instructions`` and ``input`` as chat completion messages: consecutive ``function_call``
    items become one assistant message's ``tool_calls``, each ``function_call_output`` a tool message."""
    out: list[dict[str, Any]] = []
    if req.instructions:
        out.append({"role": "system", "content": req.instructions})
    items = [InputItem(role="user", content=req.input)] if isinstance(req.input, str) else req.input
    for i, item in enumerate(items):
        where = f"input.{i}"
        kind = item.type or ("message" if item.role is not None else None)
        if kind == "message":
            if item.role is None:
                raise BadRequest(f"{where}: a message needs a 'role'", param=where)
            out.append({"role": item.role, "content": _text(item.content, f"{where}.content")})
        elif kind == "function_call":
            if item.call_id is None or item.name is None:
                raise BadRequest(f"{where}: a function_call needs 'call_id' and 'name'", param=where)
            call = {"id": item.call_id, "type": "function",
                    "function": {"name": item.name, "arguments": item.arguments or "{}"}}
            if out and out[-1]["role"] == "assistant":
                out[-1].setdefault("tool_calls", []).append(call)
            else:
                out.append({"role": "assistant", "content": "", "tool_calls": [call]})
        elif kind == "function_call_output":
            if item.call_id is None:
                raise BadRequest(f"{where}: a function_call_output needs 'call_id'", param=where)
            out.append({"role": "tool", "tool_call_id": item.call_id, "content": _text(item.output, f"{where}.output")})
        elif kind == "reasoning":
            log.info("ignoring a reasoning item in the input (%s)", where)
        elif kind is None:
            raise BadRequest(f"{where}: an item needs a 'type' (or a 'role' for a message)", param=where)
        else:
            raise BadRequest(f"not supported: input items of type '{echo(kind)}' ({where}); send messages, "
                             "function_call and function_call_output items", param=where)
    return out


def to_chat(req: ResponsesRequest) -> ChatCompletionRequest:
    extra = req.model_extra or {}

    def sent(name: str, neutral: tuple[object, ...]) -> bool:
        value = getattr(req, name) if name in type(req).model_fields else extra.get(name)
        return value not in neutral

    for name, neutral in _NEEDS_STATE.items():
        if sent(name, neutral):
            raise BadRequest(f"not supported: {name} (this server is stateless: responses are not stored, and "
                             "hosted prompts, conversations and background jobs do not exist here); send the whole "
                             "conversation as input", param=name)
    for name, neutral in _NOT_SERVED.items():
        if sent(name, neutral):
            raise BadRequest(f"not supported: {name} on /v1/responses; remove it", param=name)
    ignored = sorted(k for k in extra if k not in _NEEDS_STATE and k not in _NOT_SERVED)
    ignored += ["reasoning"] if req.reasoning else []
    if ignored:
        log.info("responses: ignoring parameters that change nothing here: %s", ", ".join(echo(k) for k in ignored))
    data: dict[str, Any] = {"model": req.model, "messages": _chat_messages(req), "temperature": req.temperature,
                            "top_p": req.top_p, "parallel_tool_calls": req.parallel_tool_calls}
    if req.max_output_tokens is not None:
        data["max_tokens"] = req.max_output_tokens
    if req.tools:
        for i, tool in enumerate(req.tools):
            if tool.type != "function" or tool.name is None:
                raise BadRequest(f"not supported: hosted tool '{echo(tool.type)}' (tools.{i}): nothing here runs it; "
                                 "define function tools (type 'function', name, parameters)", param=f"tools.{i}")
        data["tools"] = [{"type": "function", "function": {"name": t.name, "description": t.description,
                                                           "parameters": t.parameters}} for t in req.tools]
    choice = req.tool_choice
    if choice is not None:
        data["tool_choice"] = choice if isinstance(choice, str) else {"type": "function",
                                                                      "function": {"name": choice.name}}
    form = req.text.format if req.text is not None else None
    if form is not None and form.type != "text":
        data["response_format"] = {"type": form.type} if form.type == "json_object" else {
            "type": "json_schema", "json_schema": {"name": form.name or "output", "schema": form.schema_ or {}}}
    return chat_request(data, {"max_tokens": "max_output_tokens", "response_format": "text.format",
                               "messages": "input"})


def _usage(stats: GenerationStats) -> ResponseUsage:
    return ResponseUsage(input_tokens=stats.prompt_tokens, output_tokens=stats.completion_tokens,
                         total_tokens=stats.prompt_tokens + stats.completion_tokens,
                         input_tokens_details=InputTokensDetails(cached_tokens=stats.cached_prompt_tokens))


def _function_call(call: ResponseToolCall) -> FunctionCallItem:
    return FunctionCallItem(id=f"fc_{uuid.uuid4().hex}", call_id=call.id, name=call.function.name,
                            arguments=call.function.arguments)


class ResponsesServing(ChatTranslation[ResponsesRequest]):
    """``/v1/responses`` over the chat serving."""

    def to_chat(self, req: ResponsesRequest) -> ChatCompletionRequest:
        return to_chat(req)

    @staticmethod
    def _response(req: ResponsesRequest, admitted: Admitted, ident: str, created: int,
                  output: list[OutputMessage | FunctionCallItem], end: ChatAnswer | ChoiceEnd | None) -> Response:
        """The response object: in progress (``end`` None) or finished."""
        status: Status = "in_progress" if end is None else "incomplete" if end.finish_reason == "length" \
            else "completed"
        return Response(
            id=ident, created_at=created, status=status, model=admitted.model, output=output,
            incomplete_details=IncompleteDetails(reason="max_output_tokens") if status == "incomplete" else None,
            instructions=req.instructions, max_output_tokens=req.max_output_tokens,
            parallel_tool_calls=req.parallel_tool_calls, temperature=req.temperature, top_p=req.top_p,
            tool_choice=req.tool_choice.model_dump() if req.tool_choice is not None and not isinstance(
                req.tool_choice, str) else req.tool_choice or "auto",
            tools=[t.model_dump(exclude_none=True) for t in req.tools or ()],
            text=req.text.model_dump(by_alias=True, exclude_none=True) if req.text and req.text.format else
            {"format": {"type": "text"}},
            usage=_usage(end.stats) if end is not None else None)

    async def respond(self, req: ResponsesRequest, chat: ChatCompletionRequest, admitted: Admitted,
                      request: Request) -> Response:
        answer = (await self.chat.answers(admitted, chat, request))[0]
        output: list[OutputMessage | FunctionCallItem] = []
        if answer.content or not answer.tool_calls:
            status: Status = "incomplete" if answer.finish_reason == "length" else "completed"
            output.append(OutputMessage(id=f"msg_{uuid.uuid4().hex}", status=status,
                                        content=[OutputText(text=answer.content or "")]))
        output.extend(_function_call(call) for call in answer.tool_calls)
        return self._response(req, admitted, f"resp_{uuid.uuid4().hex}", int(time.time()), output, answer)

    def stream(self, req: ResponsesRequest, chat: ChatCompletionRequest, admitted: Admitted) -> GenerationStream:
        ident, created = f"resp_{uuid.uuid4().hex}", int(time.time())
        sequence = 0

        def event(type_: str, **fields: Any) -> dict[str, Any]:
            nonlocal sequence
            sequence += 1
            return {"type": type_, "sequence_number": sequence - 1, **fields}

        async def events() -> AsyncIterator[dict[str, Any]]:
            output: list[OutputMessage | FunctionCallItem] = []
            message: OutputMessage | None = None  # the message item being written, if one is

            def close_message(status: str) -> list[dict[str, Any]]:
                nonlocal message
                if message is None:
                    return []
                done, message = message, None
                done.status = "incomplete" if status == "incomplete" else "completed"
                index, part = len(output) - 1, done.content[0]
                return [event("response.output_text.done", item_id=done.id, output_index=index, content_index=0,
                              text=part.text, logprobs=[]),
                        event("response.content_part.done", item_id=done.id, output_index=index, content_index=0,
                              part=part.model_dump()),
                        event("response.output_item.done", output_index=index, item=done.model_dump())]

            def open_message() -> list[dict[str, Any]]:
                nonlocal message
                message = OutputMessage(id=f"msg_{uuid.uuid4().hex}", status="in_progress",
                                        content=[OutputText(text="")])
                output.append(message)
                index = len(output) - 1
                return [event("response.output_item.added", output_index=index,
                              item={**message.model_dump(), "content": []}),
                        event("response.content_part.added", item_id=message.id, output_index=index,
                              content_index=0, part=OutputText(text="").model_dump())]

            started = self._response(req, admitted, ident, created, [], None).model_dump(mode="json")
            yield event("response.created", response=started)
            yield event("response.in_progress", response=started)
            async for item in self.chat.answer_events(admitted, chat):
                if isinstance(item, TextDelta):
                    if not item.text:
                        continue
                    for e in open_message() if message is None else []:
                        yield e
                    assert message is not None
                    message.content[0].text += item.text
                    yield event("response.output_text.delta", item_id=message.id, output_index=len(output) - 1,
                                content_index=0, delta=item.text, logprobs=[])
                elif isinstance(item, ChoiceEnd):
                    status = "incomplete" if item.finish_reason == "length" else "completed"
                    if not output:  # an empty answer is still a message
                        for e in open_message():
                            yield e
                    for e in close_message(status):
                        yield e
                    done = self._response(req, admitted, ident, created, output, item).model_dump(mode="json")
                    yield event("response.completed" if status == "completed" else "response.incomplete",
                                response=done)
                else:
                    for e in close_message("completed"):
                        yield e
                    call = _function_call(item.call)
                    output.append(call)
                    index = len(output) - 1
                    yield event("response.output_item.added", output_index=index,
                                item={**call.model_dump(), "arguments": "", "status": "in_progress"})
                    yield event("response.function_call_arguments.delta", item_id=call.id, output_index=index,
                                delta=call.arguments)
                    yield event("response.function_call_arguments.done", item_id=call.id, output_index=index,
                                name=call.name, arguments=call.arguments)
                    yield event("response.output_item.done", output_index=index, item=call.model_dump())

        framing = StreamFraming(media_type="text/event-stream", frame=sse_typed_event, error=lambda exc: event(
            "error", code=exc.code, message=exc.message, param=exc.extra.get("param")))
        return GenerationStream(admitted, events(), framing)
