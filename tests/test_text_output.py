"""Stop strings and UTF-8 safety of generated text, piece by piece."""

from __future__ import annotations

from gguf_model_server.text_output import TextOutput


def feed_all(out: TextOutput, pieces: list[bytes]) -> list[str]:
    sent = [out.feed(p) for p in pieces]
    if not out.stopped:
        sent.append(out.flush())
    return sent


def test_without_stop_strings_text_passes_through_per_piece() -> None:
    out = TextOutput([])
    assert feed_all(out, [b"Hello", b" world"]) == ["Hello", " world", ""]


def test_a_character_split_across_tokens_is_sent_once_whole() -> None:
    euro = "€".encode()  # 3 bytes
    out = TextOutput([])
    assert [out.feed(euro[:1]), out.feed(euro[1:2]), out.feed(euro[2:] + b"!")] == ["", "", "€!"]


def test_a_stop_string_spanning_tokens_ends_the_text_before_it() -> None:
    out = TextOutput(["\n\nQ:"])
    sent = [out.feed(p) for p in [b"Paris.", b"\n", b"\nQ", b": next"]]
    assert out.stopped
    assert "".join(sent) == "Paris." and out.text == "Paris."
    assert sent[1] == "" and sent[2] == ""  # held back while it could still be the stop string


def test_held_back_text_is_released_when_it_is_not_a_stop_string() -> None:
    out = TextOutput(["END"])
    assert out.feed(b"the EN") == "the "
    assert out.feed(b"D") == "" and out.stopped  # "EN" + "D" completes it
    out2 = TextOutput(["END"])
    assert out2.feed(b"the EN") == "the "
    assert out2.feed(b"ding") == "ENding"  # not a stop string after all
    assert out2.flush() == "" and not out2.stopped


def test_text_at_the_end_that_looked_like_a_stop_prefix_is_flushed() -> None:
    out = TextOutput(["</answer>"])
    assert out.feed(b"42 </ans") == "42 "
    assert out.flush() == "</ans"


def test_the_earliest_of_several_stop_strings_wins() -> None:
    out = TextOutput(["world", "lo w"])
    assert "".join(feed_all(out, [b"hello world"])) == "hel"
