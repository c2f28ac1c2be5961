"""A chat's answer in no API's shape: what the chat serving hands to every API family that speaks
chat (OpenAI's chat completions and Responses, Anthropic's Messages, Ollama's chat), each of which
shapes it into its own response or events."""

from __future__ import annotations

from dataclasses import dataclass

from gguf_model_server.api.chat_completion.protocol import ResponseToolCall
from gguf_model_server.engine import Generation, GenerationStats


@dataclass(frozen=True)
class ChatAnswer:
    """One choice's whole answer."""

    index: int
    content: str | None  # None: the answer is tool calls only
    tool_calls: list[ResponseToolCall]
    finish_reason: str  # OpenAI's: "stop", "length" or "tool_calls"
    stats: GenerationStats
    generation: Generation


@dataclass(frozen=True)
class TextDelta:
    """More of a choice's text."""

    index: int
    text: str


@dataclass(frozen=True)
class ToolCallDone:
    """A whole tool call (sent once its text is complete); ``position``: its place among the choice's calls."""

    index: int
    call: ResponseToolCall
    position: int


@dataclass(frozen=True)
class ChoiceEnd:
    """A choice has ended."""

    index: int
    finish_reason: str
    stats: GenerationStats


ChatEvent = TextDelta | ToolCallDone | ChoiceEnd
