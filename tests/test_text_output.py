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


def _reference(pieces: list[bytes], stops: list[str]) -> tuple[str, bool]:
    """What a client must receive in all, by a plain search of the whole text after each piece:
    the text up to the stop string completed first (the earliest-starting one among those that
    the same piece completed), or all of it."""
    text = ""
    for piece in pieces:
        text += piece.decode()
        hits = [i for i in (text.find(s) for s in stops) if i >= 0]
        if hits:
            return text[:min(hits)], True
    return text, False


def test_matches_a_plain_search_on_random_texts_and_stop_strings() -> None:
    import random

    rng = random.Random(17)
    for _ in range(3000):
        text = "".join(rng.choice("aab") for _ in range(rng.randint(0, 30)))
        stops = ["".join(rng.choice("ab") for _ in range(rng.randint(1, 5))) for _ in range(rng.randint(1, 4))]
        pieces, i = [], 0
        while i < len(text):
            n = rng.randint(1, 4)
            pieces.append(text[i:i + n].encode())
            i += n
        out = TextOutput(stops)
        sent = []
        for p in pieces:
            sent.append(out.feed(p))
            # Never sent: anything at or after a stop string, and held back only a possible stop prefix.
            assert not any(s in "".join(sent) for s in stops), (text, stops, sent)
        if not out.stopped:
            sent.append(out.flush())
        assert ("".join(sent), out.stopped) == _reference(pieces, stops), (text, stops, pieces, sent)


def test_cost_per_token_does_not_grow_with_the_length_of_the_stop_strings() -> None:
    # Matched on the model's engine thread for every token of every sequence: 16 stop strings of 256
    # characters must cost about what 16 short ones do. (Was O(longest × count) per token:
    # ~4.9 ms per token for sixteen 100 KB stop strings, delaying every neighbour's step.)
    import statistics
    import time

    text = [f"token{i % 7} ".encode() for i in range(400)]

    def per_token(stops: list[str]) -> float:
        out = TextOutput(stops)
        t0 = time.perf_counter()
        for piece in text:
            out.feed(piece)
        assert not out.stopped
        return (time.perf_counter() - t0) / len(text)

    short = [f"{chr(0x41 + i)}{chr(0x41 + i)}!" for i in range(16)]
    long = [f"{chr(0x41 + i)}" * 255 + "!" for i in range(16)]
    near = [f"token{i % 7} " * 40 + "!" for i in range(16)]  # always partly matched
    runs: dict[str, list[float]] = {"short": [], "long": [], "near": []}
    for _ in range(5):  # interleaved, medians: the machine is shared
        for name, stops in (("short", short), ("long", long), ("near", near)):
            runs[name].append(per_token(stops))
    base = statistics.median(runs["short"])
    assert statistics.median(runs["long"]) < 2 * base, runs
    assert statistics.median(runs["near"]) < 3 * base, runs
