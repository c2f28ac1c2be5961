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


def json_schema_grammar(schema: Any) -> str:
    """The GBNF grammar of JSON documents that ``schema`` accepts; ``SchemaNotEnforceable`` otherwise."""
    text = json.dumps(schema)
    if len(text) > MAX_SCHEMA_CHARS:
        raise SchemaNotEnforceable("schema", f"{len(text)} characters of JSON; at most {MAX_SCHEMA_CHARS}")
    check_enforceable(schema)
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    try:
        return str(json_schema_to_gbnf(text))
    except Exception as exc:  # noqa: BLE001 - third-party code on client input: any failure is the schema's
        # The converter's own refusals (a regular expression it cannot translate, a dangling $ref).
        raise SchemaNotEnforceable("schema", f"cannot be turned into a grammar: {exc}") from None


def json_object_grammar() -> str:
    """Any JSON object (``response_format: {"type": "json_object"}``)."""
    return json_schema_grammar({"type": "object"})
