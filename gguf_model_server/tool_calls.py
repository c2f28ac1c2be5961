"""Tool calls: each model family's call syntax — detected from its chat template, enforced by a
grammar, parsed out of the generated text into OpenAI's ``tool_calls``.

A family is one ``ToolCallFormat`` subclass (llama.cpp's ``common/chat.cpp`` has one handler per
family the same way): how to recognise its template, the grammar of one call, where a call starts
and ends in the text. Hermes (``<tool_call>{"name": …, "arguments": …}</tool_call>``: Qwen 2.5 and 3,
Hermes 2/3, many fine-tunes) is the one served now; another family is another subclass in
``FORMATS``.

The tools themselves are rendered by the model's own chat template; nothing here writes a prompt.
No llama.cpp or web-framework import here (the grammar's rules come from ``structured_output``).
"""

from __future__ import annotations

import json
import re
import secrets
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from gguf_model_server.generation_params import GrammarTrigger
from gguf_model_server.structured_output import (
    GrammarBuilder,
    SchemaNotEnforceable,
    check_enforceable,
    gbnf_literal,
)


@dataclass(frozen=True)
class ToolFunction:
    """A function the client offers (OpenAI's ``tools[].function``)."""

    name: str
    parameters: dict[str, Any]  # a JSON schema of the arguments object


@dataclass(frozen=True)
class ToolCall:
    """A call the model made: ``arguments`` is a JSON object, as text (OpenAI's shape)."""

    id: str
    name: str
    arguments: str


def new_call_id() -> str:
    return f"call_{secrets.token_hex(12)}"


class ToolSchemaError(ValueError):
    """A tool's parameters schema cannot be enforced; the message names the keyword."""

    def __init__(self, index: int, error: SchemaNotEnforceable) -> None:
        super().__init__(f"tools.{index}.function.parameters.{error}")
        self.param = f"tools.{index}.function.parameters"


class ToolCallParser(Protocol):
    """Splits one generation's text into content and calls, as it streams."""

    calls: list[ToolCall]

    def feed(self, text: str) -> list[str | ToolCall]:
        """More text; returns the content and the whole calls it completes."""

    def finish(self) -> list[str | ToolCall]:
        """The end of the text: what was held back."""


class ToolCallFormat(ABC):
    """One model family's tool-call syntax."""

    name: ClassVar[str]
    start: ClassVar[str]  # the text that opens a call: also what starts a lazy grammar

    @classmethod
    @abstractmethod
    def detect(cls, template: str) -> bool:
        """Whether a chat template (its Jinja source) writes this family's calls."""

    @abstractmethod
    def root(self, builder: GrammarBuilder, call_json: str, *, parallel: bool) -> str:
        """The grammar's root rule: the answer's calls around ``call_json`` (the rule of one call's JSON
        object), one or, with ``parallel``, several."""

    @abstractmethod
    def trigger(self, functions: Sequence[ToolFunction]) -> GrammarTrigger:
        """Where the calls start in an answer that may also be text (``tool_choice: auto``)."""

    @abstractmethod
    def parser(self, functions: Sequence[ToolFunction]) -> ToolCallParser:
        """A fresh parser for one generation's text."""

    def grammar(self, functions: Sequence[ToolFunction], *, parallel: bool) -> str:
        """GBNF for one call (or, with ``parallel``, one or more) to one of ``functions``, whose
        arguments follow the function's schema. ``ToolSchemaError`` naming what cannot be enforced."""
        builder = GrammarBuilder()
        alternatives = []
        for i, function in enumerate(functions):
            schema = {"type": "object", "properties": {"name": {"const": function.name},
                                                       "arguments": function.parameters},
                      "required": ["name", "arguments"], "additionalProperties": False}
            try:
                check_enforceable(function.parameters)  # names the keyword as the client wrote it
                alternatives.append(builder.schema(schema, f"tool{i}-call"))
            except SchemaNotEnforceable as exc:
                raise ToolSchemaError(i, exc) from None
        builder.rule("root", self.root(builder, builder.rule("tool-call-json", " | ".join(alternatives)),
                                       parallel=parallel))
        return builder.grammar()


class TaggedJsonParser:
    """Text with calls written as JSON between two tags (``start`` … ``end``): the text outside them is
    the answer's content, each tagged JSON one call. An answer that is nothing but one call's JSON,
    without the tags (small models drop them), is that call too. Streamed: ``feed`` returns what can
    be told apart so far — text that may be the start of a tag, or a bare call, is held back until
    it is clear."""

    def __init__(self, start: str, end: str, names: Sequence[str]) -> None:
        self._start, self._end = start, end
        self._names = frozenset(names)
        self._buffer = ""
        self._in_call = False
        self._sent_any = False  # content or a call went out: the answer is not one bare call
        self.calls: list[ToolCall] = []

    def feed(self, text: str) -> list[str | ToolCall]:
        self._buffer += text
        if not self._sent_any and self._start not in self._buffer and _may_be_bare(self._buffer):
            return []  # nothing yet, or maybe a bare call: wait for the end
        out: list[str | ToolCall] = []
        while True:
            tag = self._end if self._in_call else self._start
            at = self._buffer.find(tag)
            if at < 0:
                break
            body, self._buffer = self._buffer[:at], self._buffer[at + len(tag):]
            if self._in_call:
                out.append(self._call(body) or f"{self._start}{body}{self._end}")
            elif body:
                out.append(body)
            self._in_call = not self._in_call
        if not self._in_call:
            keep = _partial_suffix(self._buffer, self._start)
            if len(self._buffer) > keep:
                out.append(self._buffer[:len(self._buffer) - keep])
                self._buffer = self._buffer[len(self._buffer) - keep:]
        out = [item for item in out if item != ""]
        self._sent_any = self._sent_any or bool(out)
        return out

    def finish(self) -> list[str | ToolCall]:
        """The rest at the end of the text: a call whose end tag never came still counts if its JSON
        is whole (a model may stop right after it); anything else is content."""
        rest, self._buffer = self._buffer, ""
        if self._in_call:
            self._in_call = False
            call = self._call(rest)
            return [call] if call is not None else [f"{self._start}{rest}"]
        if not self._sent_any:
            fenced = _FENCED.fullmatch(rest)
            call = self._call(fenced.group(1) if fenced else rest, known_only=True)
            if call is not None:
                return [call]
        return [rest] if rest else []

    def _call(self, body: str, *, known_only: bool = False) -> ToolCall | None:
        try:
            data = json.loads(body)
        except ValueError:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            return None
        if known_only and data["name"] not in self._names:
            return None  # a JSON answer that merely has a "name"
        arguments = data.get("arguments", data.get("parameters", {}))
        if isinstance(arguments, str):  # some models write the arguments as a JSON string
            try:
                arguments = json.loads(arguments)
            except ValueError:
                return None
        if not isinstance(arguments, dict):
            return None
        call = ToolCall(id=new_call_id(), name=data["name"], arguments=json.dumps(arguments, ensure_ascii=False))
        self.calls.append(call)
        return call


_FENCE = "```json"
# The closing fence may be missing: a grammar that took the call from its "{" ends the answer with it.
_FENCED = re.compile(r"\s*```(?:json)?\s*(.*?)\s*(?:```)?\s*", re.DOTALL)


def _may_be_bare(text: str) -> bool:
    """Whether an answer that starts so may be one call's JSON without tags (alone or in a code fence)."""
    start = text.lstrip()
    return start[:1] in ("", "{") or (_FENCE.startswith(start[:len(_FENCE)]) and (
        len(start) <= len(_FENCE) or start[len(_FENCE):].lstrip()[:1] in ("", "{")))


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that is a proper start of ``tag``."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:n]):
            return n
    return 0


class HermesFormat(ToolCallFormat):
    """``<tool_call>\\n{"name": "f", "arguments": {...}}\\n</tool_call>``, one block per call (Hermes 2 Pro,
    Qwen 2.5 / 3 and their fine-tunes; llama.cpp's ``COMMON_CHAT_FORMAT_HERMES_2_PRO``)."""

    name = "hermes"
    start = "<tool_call>"
    end = "</tool_call>"

    @classmethod
    def detect(cls, template: str) -> bool:
        return cls.start in template

    def root(self, builder: GrammarBuilder, call_json: str, *, parallel: bool) -> str:
        newline = gbnf_literal("\n")
        call = builder.rule("tool-call", f"{gbnf_literal(self.start)} {newline}? {call_json} {newline}? "
                                         f"{gbnf_literal(self.end)}")
        # Or one call's JSON alone, as small Qwen models write it (llama.cpp accepts it too).
        return f"{call} ({newline}? {call})* | {call_json}" if parallel else f"{call} | {call_json}"

    def trigger(self, functions: Sequence[ToolFunction]) -> GrammarTrigger:
        # The bare form only as the whole answer: an answer that starts with a call's JSON (in a code
        # fence or not).
        names = "|".join(re.escape(f.name) for f in functions)
        return GrammarTrigger(words=(self.start,),
                              patterns=(rf'\s*(?:```(?:json)?\s*)?(\{{\s*"name"\s*:\s*"(?:{names})")',))

    def parser(self, functions: Sequence[ToolFunction]) -> ToolCallParser:
        return TaggedJsonParser(self.start, self.end, [f.name for f in functions])


FORMATS: tuple[type[ToolCallFormat], ...] = (HermesFormat,)


def format_for_template(template: str) -> ToolCallFormat | None:
    """The tool-call family a chat template writes, if it is one served here."""
    for family in FORMATS:
        if family.detect(template):
            return family()
    return None
