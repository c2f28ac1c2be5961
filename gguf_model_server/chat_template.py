"""Chat prompts from the model's own chat template (the Jinja source stored in the GGUF file).

Rendering uses llama-cpp-python's ``Jinja2ChatFormatter`` (a sandboxed Jinja environment with
Transformers' extensions), the same renderer its high-level API uses. A model without a template
gets ChatML, as llama-server falls back to; ``options.chat_template`` overrides both.

The rendered prompt is one string, but not all of it may become control tokens: the template's own
markup (``<|im_start|>``, ``<start_of_turn>``, ``<bos>``) must, while the same text typed into a
message must stay text, or a user could forge system or assistant turns. So the template is also
rendered with a placeholder in place of each message's text, which shows where the template's own
text ends and each message's begins (``ChatTemplate.parts``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from serving_core.errors import BadRequest

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Plain lowercase ASCII: survives the filters templates apply to message text (trim, lower,
# tojson), and cannot occur in the template's own text, because no message text is in that render.
_PLACEHOLDER = "@@msg{}content@@"
_PLACEHOLDER_RE = re.compile(r"@@msg(\d+)content@@")
_PROBE_TOOL = "probe_function_4f1c"
Tools = list[dict[str, Any]] | None
"""OpenAI's ``tools`` list as templates read it (``tool.function.name``, ``tool | tojson``)."""


@dataclass(frozen=True)
class ChatPart:
    text: str
    from_message: bool  # a message's text: tokenized as text, never as control tokens


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
        self._renders_tools: bool | None = None

    def render(self, messages: list[dict[str, Any]], tools: Tools = None) -> RenderedChat:
        """The prompt for ``messages`` (and the ``tools`` they may call), ending where the assistant's
        answer starts."""
        try:
            prompt = self._render(messages, tools)
        except Exception as exc:  # noqa: BLE001 - templates raise anything (raise_exception, Jinja errors)
            raise BadRequest(f"the model's chat template refused these messages: {exc}", param="messages") from None
        return RenderedChat(prompt=prompt, starts_with_bos=bool(self._bos) and prompt.startswith(self._bos))

    def _render(self, messages: list[dict[str, Any]], tools: Tools) -> str:
        # llama-cpp-python types these as its TypedDicts; they are the same OpenAI shapes.
        return self._formatter(messages=messages, tools=tools).prompt  # type: ignore[arg-type]

    def renders_tools(self) -> bool:
        """Whether the template writes the tools it is given into the prompt (llama.cpp's minja probes a
        template's capabilities the same way): one render, the first time."""
        if self._renders_tools is None:
            probe = [{"type": "function", "function": {"name": _PROBE_TOOL, "description": "probe",
                                                       "parameters": {"type": "object", "properties": {}}}}]
            try:
                prompt = self._render([{"role": "user", "content": "hi"}], probe)
            except Exception:  # noqa: BLE001 - a template that refuses tools does not support them
                prompt = ""
            self._renders_tools = _PROBE_TOOL in prompt
        return self._renders_tools

    def parts(self, messages: list[dict[str, Any]], prompt: str, tools: Tools = None) -> tuple[ChatPart, ...] | None:
        """``prompt`` (``messages`` rendered) cut into the template's text and the messages' text,
        which make it up in turn; None when the template rewrites message text beyond trimming it,
        so that the cut cannot be found. Renders the template a second time."""
        contents = {i: m["content"] for i, m in enumerate(messages) if isinstance(m.get("content"), str)
                    and m["content"]}
        if not contents:  # nothing a user typed is in the prompt
            return (ChatPart(prompt, from_message=False),)
        # Empty texts stay as they are: a placeholder would take the template's "has content" branches.
        stand_ins = [{**m, "content": _PLACEHOLDER.format(i)} if i in contents else m
                     for i, m in enumerate(messages)]
        try:
            skeleton = self._render(stand_ins, tools)
        except Exception:  # noqa: BLE001 - a template that looks at the text itself: not traceable
            return None
        pieces = _PLACEHOLDER_RE.split(skeleton)
        texts, slots = pieces[0::2], [int(i) for i in pieces[1::2]]
        if any(i not in contents for i in slots):
            return None
        chosen = _match(prompt, texts, [_variants(contents[i]) for i in slots])
        if chosen is None:
            return None
        parts = [ChatPart(texts[0], from_message=False)]
        for text, template_text in zip(chosen, texts[1:], strict=True):
            parts += [ChatPart(text, from_message=True), ChatPart(template_text, from_message=False)]
        return tuple(p for p in parts if p.text)


def _variants(text: str) -> list[str]:
    """How templates write a message's text: as given, or trimmed (Jinja's ``trim``, ``strip()``)."""
    out: list[str] = []
    for v in (text, text.strip(), text.lstrip(), text.rstrip()):
        if v not in out:
            out.append(v)
    return out


def _match(prompt: str, texts: list[str], variants: list[list[str]]) -> list[str] | None:
    """The message texts (one variant per slot) for which template text and message text, in
    turn, make up ``prompt`` exactly; None if no choice does.

    A small dynamic programme over positions in ``prompt``: at most four variants per slot, and
    the reachable positions after each slot are few (they differ only by trimmed whitespace).
    """
    if not prompt.startswith(texts[0]):
        return None
    reached: dict[int, tuple[int, str] | None] = {len(texts[0]): None}
    steps: list[dict[int, tuple[int, str] | None]] = [reached]
    for options, after in zip(variants, texts[1:], strict=True):
        nxt: dict[int, tuple[int, str] | None] = {}
        for pos in reached:
            for v in options:
                end = pos + len(v)
                if prompt.startswith(v, pos) and prompt.startswith(after, end):
                    nxt.setdefault(end + len(after), (pos, v))
        if not nxt:
            return None
        steps.append(nxt)
        reached = nxt
    if len(prompt) not in reached:
        return None
    chosen: list[str] = []
    pos = len(prompt)
    for step in reversed(steps[1:]):
        back = step[pos]
        assert back is not None
        pos, text = back
        chosen.append(text)
    return chosen[::-1]
