"""Request and response models of Anthropic's Messages API (``/v1/messages``,
``/v1/messages/count_tokens``), as the official ``anthropic`` SDK sends and reads them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.api.chat_completion.protocol import MAX_TOOLS, CallId, FunctionName
from gguf_model_server.api.protocol import MAX_CHAT_MESSAGES, MAX_TOKENS_LIMIT, StopText
from gguf_model_server.llama_native import MAX_CANDIDATES
from serving_core.schema_types import Text

MAX_BLOCKS = 1024


class ContentBlock(BaseModel):
    """A block of a message's content: ``text``, ``tool_use`` (an assistant's call) or ``tool_result``
    (the user's answer to one). Other types (``image``, ``document``, ``thinking``, …) are parsed so that
    the refusal can name them (400 "not supported")."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # cache_control, citations: no effect here
    type: Annotated[str, Field(min_length=1, max_length=64)]
    text: Text | None = None
    id: CallId | None = Field(default=None, description="tool_use: the call's id")
    name: FunctionName | None = Field(default=None, description="tool_use: the function called")
    input: dict[str, Any] | None = Field(default=None, description="tool_use: the call's arguments")
    tool_use_id: CallId | None = Field(default=None, description="tool_result: the call it answers")
    content: Text | Annotated[list[ContentBlock], Field(max_length=MAX_BLOCKS)] | None = Field(
        default=None, description="tool_result: the result, as text or text blocks")
    is_error: bool = False


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    role: Literal["user", "assistant"]
    content: Text | Annotated[list[ContentBlock], Field(max_length=MAX_BLOCKS)]


class Tool(BaseModel):
    """A client tool (a function the model may call). Anthropic's server tools (``web_search_…``,
    ``bash_…``, …) carry a ``type`` and are refused: nothing here runs them."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Annotated[str, Field(max_length=64)] | None = None
    name: FunctionName
    description: Annotated[Text, Field(max_length=8192)] | None = None
    input_schema: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}},
                                         description="a JSON schema of the input, enforced by a grammar")


class ToolChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["auto", "any", "tool", "none"]
    name: FunctionName | None = None
    disable_parallel_tool_use: bool = False


class OutputFormat(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["json_schema"]
    schema_: dict[str, Any] = Field(alias="schema", description="enforced token by token (a keyword the grammar "
                                    "cannot enforce is refused with 400 naming it)")


class OutputConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: OutputFormat | None = None
    effort: str | None = Field(default=None, description="accepted and ignored (logged)")


class CountTokensRequest(BaseModel):
    """``/v1/messages/count_tokens``: the prompt a ``/v1/messages`` request would evaluate, counted."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: Annotated[Text, Field(min_length=1, max_length=256)]
    messages: list[Message] = Field(min_length=1, max_length=MAX_CHAT_MESSAGES)
    system: Text | Annotated[list[ContentBlock], Field(max_length=MAX_BLOCKS)] | None = None
    tools: Annotated[list[Tool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: ToolChoice | None = None
    thinking: dict[str, Any] | None = Field(default=None, description="accepted and ignored (logged): the models "
                                            "here do not think aloud in blocks")


class MessagesRequest(CountTokensRequest):
    """Anthropic's ``messages.create``. Fields it does not list (``metadata``, ``service_tier``, …) are
    accepted and ignored."""

    max_tokens: int = Field(ge=1, le=MAX_TOKENS_LIMIT, description="required, as in Anthropic's API")
    stop_sequences: Annotated[list[StopText], Field(max_length=16)] | None = None
    # Sampling fields: Anthropic's range; older SDKs send them as arguments, newer ones in extra_body.
    temperature: float = Field(default=1.0, ge=0.0, le=1.0, description="Anthropic's range, 0-1")
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=MAX_CANDIDATES)
    stream: bool = False
    output_config: OutputConfig | None = Field(default=None, description="format: a JSON schema the answer follows")


class TextBlockOut(BaseModel):
    type: Literal["text"] = "text"
    text: str


class ToolUseBlockOut(BaseModel):
    type: Literal["tool_use"] = "tool_use"
    id: str
    name: str
    input: dict[str, Any]


StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use"]


class MessagesUsage(BaseModel):
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int = Field(default=0, description="prompt tokens whose KV was reused")
    cache_creation_input_tokens: int = 0


class MessagesResponse(BaseModel):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    model: str
    content: list[TextBlockOut | ToolUseBlockOut]
    stop_reason: StopReason | None
    stop_sequence: str | None = None
    usage: MessagesUsage


class CountTokensResponse(BaseModel):
    input_tokens: int
