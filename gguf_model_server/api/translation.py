"""What every translating API family (Responses, Anthropic Messages, Ollama) shares: its request
becomes a ``ChatCompletionRequest``, validated like one, so that every limit and check of the chat
route holds for it too; the one generation path stays the chat serving's."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from gguf_model_server.api.chat_completion.protocol import ChatCompletionRequest
from gguf_model_server.api.chat_completion.serving import ChatServing
from gguf_model_server.api.generation import Admitted
from serving_core.errors import BadRequest, echo

Req = TypeVar("Req")
Model = TypeVar("Model", bound=BaseModel)


def chat_request(data: dict[str, Any], fields: dict[str, str] | None = None) -> ChatCompletionRequest:
    """``data`` (a chat completion request's fields) validated as one; a 400 naming the problem,
    in the client's own field names where ``fields`` maps them (chat field → client field)."""
    return translated(ChatCompletionRequest, data, fields)


def translated(cls: type[Model], data: dict[str, Any], fields: dict[str, str] | None = None) -> Model:
    """``data`` validated as a ``cls`` request; a 400 naming the problem, in the client's own field
    names where ``fields`` maps them (our field → the client's)."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [str(p) for p in first.get("loc", ())]
        if loc and fields and loc[0] in fields:
            loc[0] = fields[loc[0]]
        raise BadRequest(f"{'.'.join(loc) or 'request'}: {echo(first.get('msg', 'invalid value'), 300)}",
                         param=".".join(loc) or None) from None


class ChatTranslation(ABC, Generic[Req]):
    """The serving of an API family that speaks chat in its own shape: its request translated to a
    chat completion request (``to_chat``), admitted by the chat serving, the answer shaped back."""

    def __init__(self, chat: ChatServing) -> None:
        self.chat = chat

    @abstractmethod
    def to_chat(self, req: Req) -> ChatCompletionRequest:
        """``req`` as a chat completion request; a 400 for what cannot be translated."""

    async def admit(self, req: Req) -> tuple[ChatCompletionRequest, Admitted]:
        chat = self.to_chat(req)
        return chat, await self.chat.admit_chat(chat)
