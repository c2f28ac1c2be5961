"""Chat prompts from the model's own chat template (the Jinja source stored in the GGUF file).

Rendering uses llama-cpp-python's ``Jinja2ChatFormatter`` (a sandboxed Jinja environment with
Transformers' extensions), the same renderer its high-level API uses. A model without a template
gets ChatML, as llama-server falls back to; ``options.chat_template`` overrides both.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from serving_core.errors import BadRequest

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass(frozen=True)
class RenderedChat:
    prompt: str
    starts_with_bos: bool  # the template wrote the BOS token itself: do not add another


class ChatTemplate:
    """A compiled chat template for one model."""

    def __init__(self, source: str, bos_token: str, eos_token: str) -> None:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.source = source
        self._bos = bos_token
        self._eos = eos_token
        self._formatter = Jinja2ChatFormatter(template=source, eos_token=eos_token, bos_token=bos_token)

    def render(self, messages: list[dict[str, Any]]) -> RenderedChat:
        """The prompt for ``messages``, ending where the assistant's answer starts."""
        try:
            prompt = self._formatter(messages=messages).prompt  # type: ignore[arg-type]
        except Exception as exc:  # noqa: BLE001 - templates raise anything (raise_exception, Jinja errors)
            raise BadRequest(f"the model's chat template refused these messages: {exc}", param="messages") from None
        return RenderedChat(prompt=prompt, starts_with_bos=bool(self._bos) and prompt.startswith(self._bos))
