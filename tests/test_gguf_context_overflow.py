"""A chat longer than the context (issue 18: turn 27 of a long chat was a hard 400): by default a
400 that names options.n_ctx and the way out; with ``context_overflow: truncate_middle`` the system
message and the latest turns are kept, the fewest oldest ones dropped, with room left to answer."""

from __future__ import annotations

import pytest
from engine_harness import load

from serving_core.errors import BadRequest

SYSTEM = {"role": "system", "content": "Be brief."}  # the tiny model spells most text byte by byte


def _chat(turns: int) -> list[dict[str, str]]:
    chat = [SYSTEM]
    for i in range(turns):
        chat += [{"role": "user", "content": f"q{i}?"}, {"role": "assistant", "content": f"a{i}"}]
    return [*chat, {"role": "user", "content": "last?"}]


@pytest.fixture(scope="module")
def models(model_files):
    strict = load("strict", model_files["a"], n_ctx=256, parallel=1)
    lenient = load("lenient", model_files["a"], n_ctx=256, parallel=1, context_overflow="truncate_middle")
    yield strict, lenient
    strict.close()
    lenient.close()


def test_by_default_a_long_chat_is_a_400_naming_n_ctx_and_the_option(models) -> None:
    strict, _ = models
    with pytest.raises(BadRequest) as exc:
        strict.tokenize_chat_within(_chat(30), reserve=32)
    assert "options.n_ctx" in exc.value.message and "truncate_middle" in exc.value.message


def test_truncate_middle_keeps_the_system_message_and_the_latest_turns(models) -> None:
    strict, lenient = models
    chat = _chat(30)
    tokens = lenient.tokenize_chat_within(chat, reserve=32)
    assert len(tokens) + 32 <= lenient.n_ctx
    # Exactly the chat with its oldest non-system messages dropped, as few as possible.
    def without_oldest(k: int) -> list[int] | None:
        try:
            return strict.tokenize_chat(chat[:1] + chat[1 + k:])
        except BadRequest:  # still over the context
            return None

    dropped = next(k for k in range(1, len(chat)) if without_oldest(k) == tokens)
    one_fewer = without_oldest(dropped - 1)
    assert one_fewer is None or len(one_fewer) + 32 > lenient.n_ctx  # dropping one fewer would not fit
    # A chat that fits is left whole.
    short = _chat(1)
    assert lenient.tokenize_chat_within(short, reserve=32) == strict.tokenize_chat(short)


def test_a_last_message_too_long_for_the_context_is_still_a_400(models) -> None:
    _, lenient = models
    with pytest.raises(BadRequest):
        lenient.tokenize_chat_within([SYSTEM, {"role": "user", "content": "word " * 400}], reserve=32)
