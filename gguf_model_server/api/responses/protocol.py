"""Request and response models of OpenAI's Responses API (``POST /v1/responses``), as the official
``openai`` SDK sends and reads them. Stateless: nothing is stored, so ``previous_response_id`` and
conversations are refused."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.api.chat_completion.protocol import MAX_TOOLS, CallId, FunctionName
from gguf_model_server.api.protocol import MAX_CHAT_MESSAGES, MAX_TOKENS_LIMIT, ModelName
from serving_core.schema_types import Text

MAX_PARTS = 1024


class InputContent(BaseModel):
    """A part of an input message: ``input_text`` (or ``output_text`` in an earlier assistant
    message). Other types (``input_image``, ``input_file``, ``input_audio``) are parsed so that the
    refusal can name them (400 "not supported")."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Annotated[str, Field(min_length=1, max_length=64)]
    text: Text | None = None


class InputItem(BaseModel):
    """An item of ``input``: a message (``role`` + ``content``), a ``function_call`` the model made
    earlier, or a ``function_call_output`` (its result)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Annotated[str, Field(max_length=64)] | None = Field(default=None, description="'message' (the default "
                                                               "with a role), 'function_call', 'function_call_output'")
    role: Literal["user", "system", "developer", "assistant"] | None = None
    content: Text | Annotated[list[InputContent], Field(max_length=MAX_PARTS)] | None = None
    call_id: CallId | None = None
    name: FunctionName | None = None
    arguments: Text | None = None
    output: Text | Annotated[list[InputContent], Field(max_length=MAX_PARTS)] | None = None


class FunctionTool(BaseModel):
    """A function the model may call. Hosted tools (``web_search``, ``file_search``, ``mcp``, …) are
    parsed so that the refusal can name them."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    type: Annotated[str, Field(min_length=1, max_length=64)]
    name: FunctionName | None = None
    description: Annotated[Text, Field(max_length=8192)] | None = None
    parameters: dict[str, Any] | None = None
    strict: bool | None = Field(default=None, description="accepted; the arguments are always enforced")


class NamedFunctionChoice(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: Literal["function"]
    name: FunctionName


class TextFormat(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)
    type: Literal["text", "json_object", "json_schema"]
    name: Annotated[str, Field(max_length=64)] | None = None
    description: Annotated[Text, Field(max_length=4096)] | None = None
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    strict: bool | None = None


class TextConfig(BaseModel):
    model_config = ConfigDict(extra="ignore")
    format: TextFormat | None = None


class ResponsesRequest(BaseModel):
    """``responses.create``. Parameters that would change the result but need state or hosted tools
    (``previous_response_id``, ``conversation``, ``background``, ``prompt``) are refused with 400;
    ``reasoning`` and other unlisted fields are accepted and ignored (logged)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    model: ModelName | None = None
    input: Text | Annotated[list[InputItem], Field(min_length=1, max_length=MAX_CHAT_MESSAGES)]
    instructions: Text | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=MAX_TOOLS)] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedFunctionChoice | None = None
    parallel_tool_calls: bool = True
    text: TextConfig | None = None
    max_output_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS_LIMIT)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    stream: bool = False
    store: bool | None = Field(default=None, description="accepted; nothing is stored (the response says store: false)")
    previous_response_id: str | None = Field(default=None, description="refused: responses are not stored")
    reasoning: dict[str, Any] | None = Field(default=None, description="accepted and ignored (logged)")


Status = Literal["in_progress", "completed", "incomplete"]


class OutputText(BaseModel):
    type: Literal["output_text"] = "output_text"
    text: str
    annotations: list[Any] = Field(default_factory=list)
    logprobs: list[Any] = Field(default_factory=list)


class OutputMessage(BaseModel):
    type: Literal["message"] = "message"
    id: str
    status: Status = "completed"
    role: Literal["assistant"] = "assistant"
    content: list[OutputText]


class FunctionCallItem(BaseModel):
    type: Literal["function_call"] = "function_call"
    id: str
    call_id: str
    name: str
    arguments: str
    status: Status = "completed"


class InputTokensDetails(BaseModel):
    cached_tokens: int


class OutputTokensDetails(BaseModel):
    reasoning_tokens: int = 0


class ResponseUsage(BaseModel):
    input_tokens: int
    input_tokens_details: InputTokensDetails
    output_tokens: int
    output_tokens_details: OutputTokensDetails = Field(default_factory=OutputTokensDetails)
    total_tokens: int


class IncompleteDetails(BaseModel):
    reason: Literal["max_output_tokens"]


class Response(BaseModel):
    id: str
    object: Literal["response"] = "response"
    created_at: int
    status: Status
    model: str
    output: list[OutputMessage | FunctionCallItem]
    error: None = None
    incomplete_details: IncompleteDetails | None = None
    instructions: str | None = None
    max_output_tokens: int | None = None
    parallel_tool_calls: bool = True
    temperature: float = 1.0
    top_p: float = 1.0
    tool_choice: Any = "auto"
    tools: list[dict[str, Any]] = Field(default_factory=list)
    text: dict[str, Any] = Field(default_factory=lambda: {"format": {"type": "text"}})
    store: bool = False
    previous_response_id: None = None
    metadata: dict[str, str] = Field(default_factory=dict)
    truncation: Literal["disabled"] = "disabled"
    usage: ResponseUsage | None = None
