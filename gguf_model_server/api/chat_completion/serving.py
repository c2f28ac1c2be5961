"""``/v1/chat/completions`` through the model's own chat template, as ``chat.completions.create``."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

from fastapi import Request

from gguf_model_server.api.chat_completion.answer import ChatAnswer, ChatEvent, ChoiceEnd, TextDelta, ToolCallDone
from gguf_model_server.api.chat_completion.protocol import (
    AssistantMessage,
    ChatChoice,
    ChatChunkChoice,
    ChatCompletionChunk,
    ChatCompletionRequest,
    ChatCompletionResponse,
    ChatDelta,
    ChatLogprobs,
    FunctionCallDelta,
    ResponseToolCall,
    ToolCallDelta,
)
from gguf_model_server.api.chat_completion.tool_use import ToolAnswer, ToolUse, finish_reason
from gguf_model_server.api.generation import Admitted, GenerationServing, GenerationStream, timings
from gguf_model_server.api.openai_params import check_openai_params, include_usage
from gguf_model_server.api.protocol import Usage
from gguf_model_server.engine import GenerationStats, JobKind
from gguf_model_server.generation_params import GenerationParams
from gguf_model_server.llama_backend import LlamaModel
from serving_core.errors import BadRequest, echo


class ChatServing(GenerationServing):
    """``/v1/chat/completions`` through the model's own chat template, as ``chat.completions.create``."""

    @staticmethod
    def _chat_input(req: ChatCompletionRequest) -> tuple[list[dict[str, Any]], ToolUse | None]:
        """The messages as the chat template reads them, and the request's tool use; 400s for what
        cannot be served."""
        check_openai_params(req)
        if req.top_logprobs is not None and not req.logprobs:
            raise BadRequest("top_logprobs needs logprobs: true", param="top_logprobs")
        for i, message in enumerate(req.messages):
            if message.tool_calls and message.role != "assistant":
                raise BadRequest(f"messages.{i}: only assistant messages carry tool_calls (this one is "
                                 f"'{message.role}')", param=f"messages.{i}.tool_calls")
            for part in message.content if isinstance(message.content, list) else ():
                if part.type != "text":
                    what = {"image_url": "image input", "input_audio": "audio input", "file": "file input"}.get(
                        part.type, f"content part type '{echo(part.type)}'")
                    raise BadRequest(f"not supported: {what} (messages.{i}: the models here read text only); send "
                                     "text parts", param=f"messages.{i}.content")
                if part.text is None:
                    raise BadRequest(f"messages.{i}.content: a text part without 'text'", param=f"messages.{i}.content")
        return [m.as_llama() for m in req.messages], ToolUse.of(req)

    async def admit_chat(self, req: ChatCompletionRequest) -> Admitted:
        messages, tool_use = self._chat_input(req)
        tools = list(tool_use.for_template) if tool_use is not None else None

        def tokenize(llama: LlamaModel, params: GenerationParams) -> list[int]:
            # Room to answer in, should the chat have to be shortened to fit.
            return llama.tokenize_chat_within(messages, params.max_tokens.reserve(llama.n_ctx), tools)

        return await self.admit(req.model or self.default_chat_model(), tokenize, req.generation_params(),
                                on_model=tool_use.on_model if tool_use is not None else None)

    async def count_tokens(self, req: ChatCompletionRequest) -> int:
        """The prompt tokens ``req`` would evaluate: its chat rendered by the model's template, tools
        included (never shortened to fit)."""
        messages, tool_use = self._chat_input(req)
        tools = list(tool_use.for_template) if tool_use is not None else None
        async with self.registry.using(req.model or self.default_chat_model()) as lease:
            if tool_use is not None:
                lease.handle.tool_format()  # a model whose template cannot render tools: the same 400
            return len(await lease.model.guard.peek(lease.handle.tokenize_chat, messages, tools))

    @staticmethod
    def tool_answers(admitted: Admitted, req: ChatCompletionRequest) -> list[ToolAnswer | None]:
        """Per choice, the parser of its answer when it may hold tool calls."""
        tool_use = ToolUse.of(req)
        if tool_use is None:
            return [None for _ in admitted.generations]
        family = admitted.llama.tool_format()
        return [ToolAnswer(family.parser(tool_use.functions)) for _ in admitted.generations]

    def default_chat_model(self) -> str | None:
        """A chat without ``model`` goes to the first ready model with a chat template of its own (a
        base model answers chat poorly, through a fallback template), else the first that generates."""
        return self.registry.default_ready(
            lambda llama: not llama.chat_fallback and llama.engine.kind is JobKind.GENERATE)

    async def answers(self, admitted: Admitted, req: ChatCompletionRequest, request: Request) -> list[ChatAnswer]:
        """Every choice's whole answer, its text parsed into content and tool calls."""
        out = []
        finished = await self.complete_choices(admitted, request)
        for done, answer in zip(finished, self.tool_answers(admitted, req), strict=True):
            content: str | None = done.text
            calls: list[ResponseToolCall] = []
            if answer is not None:
                items = answer.feed(done.text) + answer.finish()
                calls = [item for item in items if isinstance(item, ResponseToolCall)]
                content = "".join(item for item in items if isinstance(item, str)).strip() or None
            out.append(ChatAnswer(index=done.index, content=content, tool_calls=calls,
                                  finish_reason=finish_reason(done.stats.finish_reason, answer), stats=done.stats,
                                  generation=done.generation))
        return out

    async def answer_events(self, admitted: Admitted, req: ChatCompletionRequest) -> AsyncIterator[ChatEvent]:
        """Every choice's answer as it comes: text, whole tool calls (each sent once its text is
        complete), then the choice's end."""
        answers = self.tool_answers(admitted, req)
        calls = [0 for _ in admitted.generations]

        def shaped(index: int, items: list[str | ResponseToolCall]) -> Iterator[ChatEvent]:
            for item in items:
                if isinstance(item, str):
                    yield TextDelta(index, item)
                else:
                    yield ToolCallDone(index, item, calls[index])
                    calls[index] += 1

        async for index, item in self.choice_events(admitted):
            answer = answers[index]
            if not isinstance(item, GenerationStats):
                for event in shaped(index, answer.feed(item) if answer is not None else [item]):
                    yield event
                continue
            if answer is not None:
                for event in shaped(index, answer.finish()):
                    yield event
            yield ChoiceEnd(index, finish_reason(item.finish_reason, answer), item)

    async def chat(self, admitted: Admitted, req: ChatCompletionRequest, request: Request) -> ChatCompletionResponse:
        choices = []
        answers = await self.answers(admitted, req, request)
        for done in answers:
            message = AssistantMessage(content=done.content, tool_calls=done.tool_calls or None)
            logprobs = ChatLogprobs.of(done.generation.logprobs) if req.logprobs else None
            choices.append(ChatChoice(index=done.index, message=message, logprobs=logprobs,
                                      finish_reason=done.finish_reason))
        stats = [done.stats for done in answers]
        return ChatCompletionResponse(id=f"chatcmpl-{uuid.uuid4().hex}", created=int(time.time()),
                                      model=admitted.model, choices=choices, usage=Usage.of(*stats),
                                      timings=timings(stats[0]))

    def chat_stream(self, admitted: Admitted, req: ChatCompletionRequest) -> GenerationStream:
        ident, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())

        def chunk(index: int, delta: ChatDelta, finish_reason: str | None = None) -> ChatCompletionChunk:
            # Each chunk carries the logprobs of the tokens that arrived since the last one (the text
            # of a token held back, or of a tool call, goes out later: its logprob may come first).
            generation = admitted.generations[index]
            logprobs = ChatLogprobs.of(generation.take_logprobs()) if req.logprobs else None
            return ChatCompletionChunk(id=ident, created=created, model=admitted.model, choices=[
                ChatChunkChoice(index=index, delta=delta, logprobs=logprobs, finish_reason=finish_reason)])

        async def events() -> AsyncIterator[ChatCompletionChunk]:
            for index in range(len(admitted.generations)):
                yield chunk(index, ChatDelta(role="assistant", content=""))
            stats: list[GenerationStats] = []
            async for event in self.answer_events(admitted, req):
                if isinstance(event, TextDelta):
                    yield chunk(event.index, ChatDelta(content=event.text))
                elif isinstance(event, ToolCallDone):
                    call = event.call
                    yield chunk(event.index, ChatDelta(tool_calls=[ToolCallDelta(
                        index=event.position, id=call.id, type="function",
                        function=FunctionCallDelta(name=call.function.name, arguments=call.function.arguments))]))
                else:
                    yield chunk(event.index, ChatDelta(), event.finish_reason)
                    stats.append(event.stats)
            if include_usage(req) and stats:
                yield ChatCompletionChunk(id=ident, created=created, model=admitted.model, choices=[],
                                          usage=Usage.of(*stats), timings=timings(stats[0]))

        return GenerationStream(admitted, events())
