"""Tools on ``/v1/chat/completions``: what a request asks (``ToolUse``), the grammar on a given
model, and the generated text turned back into content and ``tool_calls``."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from gguf_model_server.api.chat_completion.protocol import (
    ChatCompletionRequest,
    FunctionCall,
    NamedToolChoice,
    ResponseToolCall,
)
from gguf_model_server.generation_params import GenerationParams
from gguf_model_server.llama_backend import LlamaModel
from gguf_model_server.tool_calls import ToolCall, ToolCallParser, ToolFunction, ToolSchemaError
from serving_core.errors import BadRequest


@dataclass(frozen=True)
class ToolUse:
    """The tools a chat may call and how: ``forced`` (``required`` or a named function) constrains the
    answer to calls from its first token; otherwise (``auto``) the grammar starts with the first call."""

    functions: tuple[ToolFunction, ...]
    forced: bool
    parallel: bool
    for_template: tuple[dict[str, Any], ...]  # every offered tool, as the chat template reads them

    @classmethod
    def of(cls, req: ChatCompletionRequest) -> ToolUse | None:
        """The request's tool use; None when it has none (no tools, or ``tool_choice: none``). A 400 for
        a choice that cannot be met."""
        choice = req.tool_choice
        if not req.tools:
            if choice not in (None, "none", "auto"):
                raise BadRequest("tool_choice asks for a tool call, but the request has no 'tools'; add them, or "
                                 "remove tool_choice", param="tool_choice")
            return None
        if choice == "none":
            return None
        if req.response_format is not None and req.response_format.type != "text":
            raise BadRequest("not supported: response_format together with tools (the answer is either calls or "
                             "the formatted JSON); send one of them, or tool_choice 'none'", param="response_format")
        offered = [ToolFunction(name=t.function.name, parameters=t.function.schema_of_arguments()) for t in req.tools]
        names = [f.name for f in offered]
        if len(set(names)) != len(names):
            twice = next(n for n in names if names.count(n) > 1)
            raise BadRequest(f"tools: the function '{twice}' is defined twice; function names must be unique",
                             param="tools")
        callable_ = offered
        if isinstance(choice, NamedToolChoice):
            callable_ = [f for f in offered if f.name == choice.function.name]
            if not callable_:
                raise BadRequest(f"tool_choice names the function '{choice.function.name}', which is not in 'tools' "
                                 f"({', '.join(names)})", param="tool_choice")
        return cls(functions=tuple(callable_), forced=choice is not None and choice != "auto",
                   parallel=req.parallel_tool_calls and not isinstance(choice, NamedToolChoice),
                   for_template=tuple(t.as_template() for t in req.tools))

    def on_model(self, llama: LlamaModel, params: GenerationParams) -> GenerationParams:
        """``params`` with the grammar of this model's call syntax: from the first token when forced,
        else from the text that opens a call. 400 for a model without tool support or a schema
        keyword the grammar cannot enforce."""
        family = llama.tool_format()
        try:
            grammar = family.grammar(self.functions, parallel=self.parallel)
        except ToolSchemaError as exc:
            raise BadRequest(str(exc), param=exc.param) from None
        return replace(params, grammar=grammar, grammar_trigger=None if self.forced else family.trigger(self.functions))


@dataclass
class ToolAnswer:
    """The generated text of a chat with tools, parsed as it comes: content and calls."""

    parser: ToolCallParser

    def feed(self, text: str) -> list[str | ResponseToolCall]:
        return self._shaped(self.parser.feed(text))

    def finish(self) -> list[str | ResponseToolCall]:
        return self._shaped(self.parser.finish())

    @property
    def called(self) -> bool:
        return bool(self.parser.calls)

    def _shaped(self, items: Iterable[str | ToolCall]) -> list[str | ResponseToolCall]:
        out: list[str | ResponseToolCall] = []
        for item in items:
            if isinstance(item, ToolCall):
                out.append(ResponseToolCall(id=item.id, function=FunctionCall(name=item.name,
                                                                               arguments=item.arguments)))
            elif not (self.called and item.isspace()):  # the line breaks between calls are no content
                out.append(item)
        return out


def finish_reason(stats_reason: str, answer: ToolAnswer | None) -> str:
    """OpenAI's ``tool_calls`` when the answer ended with calls; a cut answer stays ``length``."""
    return "tool_calls" if answer is not None and answer.called and stats_reason == "stop" else stats_reason
