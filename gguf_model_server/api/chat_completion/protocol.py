"""Request and response models of ``/v1/chat/completions``."""

from __future__ import annotations

import json
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.api.openai_params import OpenAIParams
from gguf_model_server.api.protocol import MAX_CHAT_MESSAGES, MAX_TOKENS_LIMIT, RequestModel, Timings, Usage
from gguf_model_server.generation_params import CHAT_DEFAULT_MAX_TOKENS
from gguf_model_server.logprobs import MAX_TOP_LOGPROBS, TokenChoice, TokenLogprob
from serving_core.schema_types import Text


class ContentPart(RequestModel):
    """A part of a message's content. Only text is served; other types (``image_url``,
    ``input_audio``, ``file``) are parsed so that the refusal can name them (400 "not supported")."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # OpenAI content parts carry more
    type: Annotated[str, Field(min_length=1, max_length=64, description="'text'; other types get 400")]
    text: Text | None = None


MAX_TOOLS = 128  # OpenAI's limit
MAX_TOOL_CALLS_IN_MESSAGE = 128
MAX_ARGUMENTS_CHARS = 65_536
FunctionName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$",
                                    description="1-64 letters, digits, '_', '.', '-' (OpenAI's rule)")]
CallId = Annotated[Text, Field(min_length=1, max_length=256)]


class FunctionCall(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    name: FunctionName
    arguments: Annotated[Text, Field(max_length=MAX_ARGUMENTS_CHARS, description="a JSON object, as text")]


class MessageToolCall(BaseModel):
    """A call the assistant made earlier in the conversation (sent back in the history)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    id: CallId
    type: Literal["function"] = "function"
    function: FunctionCall

    def as_template(self) -> dict[str, Any]:
        # Templates write the arguments with ``tojson`` (Qwen's, Hermes'): they expect an object,
        # and a string would come out quoted. llama.cpp's chat code hands them objects the same way.
        try:
            arguments: Any = json.loads(self.function.arguments)
        except ValueError:
            arguments = self.function.arguments
        return {"id": self.id, "type": "function", "function": {"name": self.function.name, "arguments": arguments}}


class ChatMessage(RequestModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Text | list[ContentPart] | None = None
    tool_calls: Annotated[list[MessageToolCall], Field(max_length=MAX_TOOL_CALLS_IN_MESSAGE)] | None = Field(
        default=None, description="an assistant message's calls")
    tool_call_id: CallId | None = Field(default=None, description="a tool message: the call it answers")
    name: Annotated[Text, Field(max_length=64)] | None = None

    def as_llama(self) -> dict[str, Any]:
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text or "" for p in content)
        role = "system" if self.role == "developer" else self.role
        message: dict[str, Any] = {"role": role, "content": content or ""}
        if self.tool_calls:
            message["tool_calls"] = [call.as_template() for call in self.tool_calls]
        if self.tool_call_id is not None:
            message["tool_call_id"] = self.tool_call_id
        if self.name is not None and role == "tool":
            message["name"] = self.name
        return message


class FunctionDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    name: FunctionName
    description: Annotated[Text, Field(max_length=8192)] | None = None
    parameters: dict[str, Any] | None = Field(
        default=None, description="a JSON schema of the arguments object, enforced when the model calls the "
        "function (a keyword that cannot be enforced is refused with 400 naming it); none: no arguments")
    strict: bool | None = Field(default=None, description="accepted; the arguments are always enforced")

    def schema_of_arguments(self) -> dict[str, Any]:
        return self.parameters if self.parameters is not None else {"type": "object", "properties": {}}


class ToolDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Literal["function"]
    function: FunctionDefinition

    def as_template(self) -> dict[str, Any]:
        # What templates read (``tool | tojson``, ``tool.function.name``): OpenAI's own shape.
        return {"type": "function", "function": self.function.model_dump(exclude_none=True,
                                                                          exclude={"strict"})}


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: FunctionName


class NamedToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    function: NamedFunction


ToolChoice = Literal["none", "auto", "required"] | NamedToolChoice


class ChatCompletionRequest(OpenAIParams):
    DEFAULT_MAX_TOKENS: ClassVar[int] = CHAT_DEFAULT_MAX_TOKENS
    CHAT: ClassVar[bool] = True

    # Bounded: the chat template (Jinja, in Python) renders every message, twice (see chat_template.parts).
    messages: list[ChatMessage] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES,
                                        description=f"1 to {MAX_CHAT_MESSAGES} messages")
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    tools: Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS)] | None = Field(
        default=None, description=f"at most {MAX_TOOLS} functions the model may call, rendered by its chat template "
        "(a model whose template has no tool support: 400)")
    tool_choice: ToolChoice | None = Field(
        default=None, description="'auto' (default with tools): the model decides; 'required': it calls at least "
        "one; {'type': 'function', 'function': {'name': ...}}: it calls that one; 'none': it answers in text. "
        "The arguments of every call follow the function's parameters schema (enforced by a grammar)")
    parallel_tool_calls: bool = Field(default=True, description="more than one call in one answer")
    logprobs: bool = Field(default=False, description="each generated token's log-probability: the model's raw "
                           "distribution, before penalties, temperature and grammar")
    top_logprobs: int | None = Field(default=None, ge=0, le=MAX_TOP_LOGPROBS,
                                     description="with logprobs: this many most likely alternatives per token")

    def requested_max_tokens(self) -> int | None:
        """The limit the client set (``max_completion_tokens`` wins, as in OpenAI's API), if any."""
        return self.max_completion_tokens or self.max_tokens

    def requested_logprobs(self) -> int | None:
        return (self.top_logprobs or 0) if self.logprobs else None


class ResponseToolCall(BaseModel):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str | None
    tool_calls: list[ResponseToolCall] | None = None


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]

    @classmethod
    def of(cls, choice: TokenChoice) -> TopLogprob:
        return cls(token=choice.text, logprob=choice.logprob, bytes=list(choice.piece))


class ChatTokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[ChatTokenLogprob] | None
    refusal: None = None

    @classmethod
    def of(cls, entries: list[TokenLogprob]) -> ChatLogprobs:
        return cls(content=[ChatTokenLogprob(**TopLogprob.of(e.chosen).model_dump(),
                                             top_logprobs=[TopLogprob.of(a) for a in e.top]) for e in entries])


class ChatChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    timings: Timings | None = None


class FunctionCallDelta(BaseModel):
    name: str | None = None
    arguments: str | None = None


class ToolCallDelta(BaseModel):
    index: int
    id: str | None = None
    type: Literal["function"] | None = None
    function: FunctionCallDelta


class ChatDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None
    tool_calls: list[ToolCallDelta] | None = None


class ChatChunkChoice(BaseModel):
    index: int
    delta: ChatDelta
    logprobs: ChatLogprobs | None = None
    finish_reason: str | None = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: Usage | None = None
    timings: Timings | None = None
