"""JSON output enforced by a grammar: ``response_format`` (``json_object``, ``json_schema``) → GBNF.

A schema is either enforced or refused: llama-cpp-python's converter (``json_schema_to_gbnf``)
silently drops keywords it cannot express (``minimum``, ``multipleOf``, ``not``, …), so every
keyword is checked against the ones it enforces first, and anything else is a 400 naming it —
never a schema accepted and then not followed. Annotations (``title``, ``description``, …)
constrain nothing and are accepted. No network: remote ``$ref`` are refused.
"""

from __future__ import annotations

import json
from typing import Any

# Keywords the converter turns into grammar rules.
ENFORCED = frozenset({
    "type", "properties", "required", "additionalProperties", "items", "prefixItems", "minItems", "maxItems",
    "enum", "const", "oneOf", "anyOf", "allOf", "$ref", "$defs", "definitions", "pattern", "format",
    "minLength", "maxLength",
})
# Keywords that describe and constrain nothing.
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "$schema", "$id", "$comment", "deprecated", "readOnly",
    "writeOnly",
})
FORMATS = frozenset({"date", "time", "date-time", "uuid", "uuid1", "uuid2", "uuid3", "uuid4", "uuid5"})
TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
MAX_SCHEMA_CHARS = 65_536
# Whitespace between JSON tokens: the converter shipped with llama-cpp-python allows one space, which
# forbids the line breaks and indentation models like to write (a token such as "{\n" is then refused
# and the grammar picks a less likely one). llama.cpp's current converter allows this, still bounded.
# A character inside a JSON string: the shipped converter lets raw control characters through, which
# JSON forbids (the output would not parse); llama.cpp's current converter excludes them as here.
CHAR = r'[^"\\\x7F\x00-\x1F] | [\\] (["\\/bfnrt] | "u" [0-9a-fA-F]{4})'
SPACE = '| " " | "\\n"{1,2} [ \\t]{0,20}'
# The converter writes a repetition bound out as that many nested rules: a bound of millions would
# take the server's memory and time before a single token.
MAX_REPETITION = 1024
_BOUNDS = frozenset({"minItems", "maxItems", "minLength", "maxLength"})


class SchemaNotEnforceable(ValueError):
    """A schema (or part of it) that the grammar cannot enforce; ``where`` names the keyword."""

    def __init__(self, where: str, why: str) -> None:
        super().__init__(f"{where}: {why}")
        self.where = where


def _walk(schema: Any, path: str) -> None:
    if isinstance(schema, bool):
        if schema is False:
            raise SchemaNotEnforceable(path or "schema", "a schema that allows nothing")
        return
    if not isinstance(schema, dict):
        raise SchemaNotEnforceable(path or "schema", "a schema must be an object")
    for key, value in schema.items():
        where = f"{path}.{key}" if path else key
        if key in ANNOTATIONS:
            continue
        if key not in ENFORCED:
            raise SchemaNotEnforceable(where, f"'{key}' is not supported (it would not be enforced); remove it")
        if key in _BOUNDS:
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_REPETITION:
                raise SchemaNotEnforceable(where, f"must be an integer from 0 to {MAX_REPETITION}")
        elif key == "type":
            types = value if isinstance(value, list) else [value]
            if not all(isinstance(t, str) and t in TYPES for t in types):
                raise SchemaNotEnforceable(where, f"unknown type {value!r}")
        elif key == "format" and value not in FORMATS:
            raise SchemaNotEnforceable(where, f"format {value!r} is not supported (supported: "
                                              f"{', '.join(sorted(FORMATS))})")
        elif key == "$ref" and not (isinstance(value, str) and value.startswith("#")):
            raise SchemaNotEnforceable(where, "only local references ('#/...') are supported")
        elif key in ("properties", "$defs", "definitions"):
            if not isinstance(value, dict):
                raise SchemaNotEnforceable(where, "must be an object of schemas")
            for name, sub in value.items():
                _walk(sub, f"{where}.{name}")
        elif key in ("oneOf", "anyOf", "allOf", "prefixItems"):
            if not isinstance(value, list) or not value:
                raise SchemaNotEnforceable(where, "must be a non-empty list of schemas")
            for i, sub in enumerate(value):
                _walk(sub, f"{where}.{i}")
        elif key == "items":
            if isinstance(value, list):
                for i, sub in enumerate(value):
                    _walk(sub, f"{where}.{i}")
            else:
                _walk(value, where)
        elif key == "additionalProperties" and not isinstance(value, bool):
            _walk(value, where)


def check_enforceable(schema: Any) -> None:
    """Raise ``SchemaNotEnforceable`` naming the first keyword the grammar could not enforce."""
    _walk(schema, "")


class GrammarBuilder:
    """One GBNF grammar made of several schemas' rules and rules of its own (a tool call wraps a
    function's arguments schema in the model's call syntax). One converter for all: shared rules
    (``space``, ``string``) are written once, and each schema's local ``$ref`` resolve inside it."""

    def __init__(self) -> None:
        from llama_cpp import llama_grammar

        converter: Any = llama_grammar.SchemaConverter  # untyped upstream
        self._converter: Any = converter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
        self._converter._rules["space"] = SPACE
        self._shipped_char = llama_grammar.PRIMITIVE_RULES["char"].content
        self._own: dict[str, str] = {}

    def schema(self, schema: Any, name: str) -> str:
        """Add the rules of the JSON documents ``schema`` accepts; returns the rule that matches one.
        ``SchemaNotEnforceable`` (naming the keyword, relative to ``schema``) when it cannot be enforced."""
        text = json.dumps(schema)
        if len(text) > MAX_SCHEMA_CHARS:
            raise SchemaNotEnforceable("schema", f"{len(text)} characters of JSON; at most {MAX_SCHEMA_CHARS}")
        check_enforceable(schema)
        try:
            # A copy: resolving rewrites every $ref in place, and the schema is the client's.
            resolved = self._converter.resolve_refs(json.loads(text), name or "root")
            return str(self._converter.visit(resolved, name))
        except Exception as exc:  # noqa: BLE001 - third-party code on client input: any failure is the schema's
            # The converter's own refusals (a regular expression it cannot translate, a dangling $ref).
            raise SchemaNotEnforceable("schema", f"cannot be turned into a grammar: {exc}") from None

    def rule(self, name: str, body: str) -> str:
        """Add a rule of raw GBNF; returns its name."""
        self._own[name] = body
        return name

    def grammar(self) -> str:
        rules = self._converter._rules
        for name, body in rules.items():
            if body == self._shipped_char:  # "char", or "char0" beside a client's own "char" definition
                rules[name] = CHAR
        own = "\n".join(f"{name} ::= {body}" for name, body in self._own.items())
        return f"{own}\n{self._converter.format_grammar()}" if own else str(self._converter.format_grammar())


def gbnf_literal(text: str) -> str:
    """``text`` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    return '"' + escaped.replace("\t", "\\t") + '"'


def json_schema_grammar(schema: Any) -> str:
    """The GBNF grammar of JSON documents that ``schema`` accepts; ``SchemaNotEnforceable`` otherwise."""
    builder = GrammarBuilder()
    builder.schema(schema, "")  # the unnamed schema's rule is "root"
    return builder.grammar()


def json_object_grammar() -> str:
    """Any JSON object (``response_format: {"type": "json_object"}``)."""
    return json_schema_grammar({"type": "object"})
