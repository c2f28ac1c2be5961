"""Request and response models of Ollama's API (the routes clients call: ``/api/chat``,
``/api/generate``, ``/api/embed``, ``/api/tags``, ``/api/ps``, ``/api/show``, ``/api/version``), as
the official ``ollama`` client sends and reads them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gguf_model_server.api.chat_completion.protocol import MAX_TOOLS, FunctionName, ToolDefinition
from gguf_model_server.api.embeddings.protocol import MAX_INPUTS
from gguf_model_server.api.protocol import MAX_CHAT_MESSAGES, MAX_TOKENS_LIMIT, StopText
from gguf_model_server.llama_native import MAX_CANDIDATES
from serving_core.schema_types import Text

ModelRef = Annotated[Text, Field(min_length=1, max_length=256, description="a configured model's name")]
KeepAlive = float | Annotated[str, Field(max_length=32)] | None
KEEP_ALIVE_DESCRIPTION = ("how long the model stays loaded after this request: seconds, or a duration ('5m', '1h', "
                          "'30s'); 0 unloads it at once, a negative value keeps it loaded; default: its configured "
                          "keep_alive")


class OllamaOptions(BaseModel):
    """Ollama's ``options``: the sampling ones are applied; load-time ones (``num_ctx``, ``num_gpu``,
    ``num_thread``, …) are set per model in the server's config, and are ignored here (logged)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    top_k: int | None = Field(default=None, ge=0, le=MAX_CANDIDATES)
    min_p: float | None = Field(default=None, ge=0.0, le=1.0)
    num_predict: int | None = Field(default=None, ge=-2, le=MAX_TOKENS_LIMIT,
                                    description="tokens to generate at most; -1 or -2: as many as fit")
    stop: Annotated[list[StopText], Field(max_length=16)] | StopText | None = None
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    repeat_penalty: float | None = Field(default=None, ge=0.1, le=10.0)
    presence_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)
    frequency_penalty: float | None = Field(default=None, ge=-2.0, le=2.0)


class OllamaFunctionCallOut(BaseModel):
    name: FunctionName
    arguments: dict[str, Any]


class OllamaToolCallOut(BaseModel):
    function: OllamaFunctionCallOut


class OllamaChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # thinking: not used by these models
    role: Literal["system", "user", "assistant", "tool"]
    content: Text = ""
    images: Annotated[list[str], Field(max_length=16)] | None = Field(default=None, description="refused (400): "
                                                                      "the models here read text only")
    tool_calls: Annotated[list[OllamaToolCallOut], Field(max_length=128)] | None = None
    tool_name: FunctionName | None = Field(default=None, description="a tool message: the tool that answered")


class OllamaGenerationFields(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)  # think, logprobs …: see the README
    model: ModelRef
    format: Literal["", "json"] | dict[str, Any] | None = Field(
        default=None, description="'json': a JSON object; a JSON schema: a document it accepts (enforced)")
    options: OllamaOptions | None = None
    stream: bool = Field(default=True, description="NDJSON, one object per piece (Ollama's default)")
    keep_alive: KeepAlive = Field(default=None, description=KEEP_ALIVE_DESCRIPTION)


class OllamaChatRequest(OllamaGenerationFields):
    messages: list[OllamaChatMessage] = Field(default_factory=list, max_length=MAX_CHAT_MESSAGES)
    tools: Annotated[list[ToolDefinition], Field(max_length=MAX_TOOLS)] | None = None


class OllamaGenerateRequest(OllamaGenerationFields):
    prompt: Text = Field(default="", description="empty: only load the model (or, with keep_alive 0, unload it)")
    system: Text | None = None
    raw: bool = Field(default=False, description="the prompt as it is, no chat template")
    suffix: Text | None = Field(default=None, description="refused (400): fill-in-the-middle is not served")
    images: Annotated[list[str], Field(max_length=16)] | None = Field(default=None, description="refused (400)")
    context: list[int] | None = Field(default=None, description="refused (400): deprecated by Ollama; send the "
                                      "conversation to /api/chat")


class OllamaEmbedRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: ModelRef
    input: Text | Annotated[list[Text], Field(min_length=1, max_length=MAX_INPUTS)]
    truncate: bool = Field(default=True, description="accepted; an input longer than the model's context is "
                           "refused (400) rather than cut")
    dimensions: int | None = Field(default=None, ge=1)
    options: OllamaOptions | None = None
    keep_alive: KeepAlive = Field(default=None, description=KEEP_ALIVE_DESCRIPTION)


class OllamaEmbeddingsRequest(BaseModel):
    """The older ``/api/embeddings``: one prompt, one vector."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)
    model: ModelRef
    prompt: Text
    keep_alive: KeepAlive = Field(default=None, description=KEEP_ALIVE_DESCRIPTION)


class OllamaShowRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: ModelRef | None = None
    name: ModelRef | None = Field(default=None, description="older clients' spelling of model")


class OllamaModelDetails(BaseModel):
    parent_model: str = ""
    format: str = "gguf"
    family: str = ""
    families: list[str] | None = None
    parameter_size: str = ""
    quantization_level: str = ""


class OllamaListedModel(BaseModel):
    name: str
    model: str
    modified_at: str
    size: int
    digest: str
    details: OllamaModelDetails


class OllamaTagsResponse(BaseModel):
    models: list[OllamaListedModel]


class OllamaRunningModel(OllamaListedModel):
    expires_at: str
    size_vram: int = 0
    context_length: int | None = None


class OllamaPsResponse(BaseModel):
    models: list[OllamaRunningModel]


class OllamaShowResponse(BaseModel):
    modelfile: str
    parameters: str
    template: str
    details: OllamaModelDetails
    model_info: dict[str, Any]
    capabilities: list[str]
    modified_at: str


class OllamaVersionResponse(BaseModel):
    version: str


class OllamaDurations(BaseModel):
    """Ollama's accounting, in nanoseconds."""

    total_duration: int
    load_duration: int
    prompt_eval_count: int
    prompt_eval_duration: int
    eval_count: int
    eval_duration: int


class OllamaAssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    tool_calls: list[OllamaToolCallOut] | None = None


class OllamaChatChunk(BaseModel):
    model: str
    created_at: str
    message: OllamaAssistantMessage
    done: Literal[False] = False


class OllamaChatResponse(OllamaDurations):
    model: str
    created_at: str
    message: OllamaAssistantMessage
    done: Literal[True] = True
    done_reason: str


class OllamaGenerateChunk(BaseModel):
    model: str
    created_at: str
    response: str
    done: Literal[False] = False


class OllamaGenerateResponse(BaseModel):
    model: str
    created_at: str
    response: str
    done: Literal[True] = True
    done_reason: str
    total_duration: int | None = None
    load_duration: int | None = None
    prompt_eval_count: int | None = None
    prompt_eval_duration: int | None = None
    eval_count: int | None = None
    eval_duration: int | None = None


class OllamaEmbedResponse(BaseModel):
    model: str
    embeddings: list[list[float]]
    total_duration: int
    load_duration: int
    prompt_eval_count: int


class OllamaEmbeddingsResponse(BaseModel):
    embedding: list[float]
