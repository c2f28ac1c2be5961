"""Generate test media (speech WAVs, encoded audio, rendered text images) and score transcripts.

Everything runs offline: speech comes from the ``espeak-ng`` binary, resampling from ``sox``,
audio encoding from PyAV (in-process, no ffmpeg binary) and images from Pillow with DejaVuSans.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16_000
FONT_PATH = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")

# ---------------------------------------------------------------- speech


def speak_wav(text: str, path: Path, *, speed: int | None = None, word_gap: int | None = None) -> Path:
    """Synthesize US-English speech for ``text`` into a 16 kHz mono 16-bit PCM WAV at ``path``.

    Defaults run plain ``espeak-ng -v en-us``. ``speed`` (words/min, espeak default 175) and ``word_gap``
    (units of 10 ms) pass ``-s`` / ``-g``; ``speed=150, word_gap=5`` is noticeably easier for small Whisper
    models to transcribe.
    """
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "espeak.wav"
        opts = ["-v", "en-us"]
        if speed is not None:
            opts += ["-s", str(speed)]
        if word_gap is not None:
            opts += ["-g", str(word_gap)]
        subprocess.run(["espeak-ng", *opts, "-w", str(raw), "--", text], check=True, capture_output=True, timeout=60)
        # espeak-ng writes 22.05 kHz mono; sox's high-quality resampler converts to 16 kHz s16 mono.
        subprocess.run(
            ["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", "-b", "16", "-e", "signed-integer", str(path),
             "rate", "-h"],
            check=True, capture_output=True, timeout=60,
        )
    return path


def varied_sentences(n: int) -> str:
    """``n`` short sentences that differ (~3.3 s of speech each): repetitive text makes Whisper loop
    for a long time without yielding a segment."""
    colors, animals = ["red", "green", "blue", "yellow"], ["cat", "dog", "horse", "bird", "fish"]
    return " ".join(f"On day {i + 1}, the {colors[i % 4]} {animals[i % 5]} walked to the market." for i in range(n))


def story(n: int, start: int = 0) -> str:
    """``n`` varied everyday sentences (~2.5 s of speech each; no two alike), for long held-out-style
    audio: who did what to what, where, in changing combinations (``start``: another story)."""
    names = ["Anna", "Brian", "Clara", "David", "Emma", "Frank", "Grace", "Henry", "Irene"]
    verbs = ["bought", "painted", "found", "lost", "repaired", "carried", "borrowed", "cleaned"]
    things = ["an old bicycle", "a wooden chair", "the red umbrella", "a small lamp", "two heavy boxes",
              "the kitchen table", "a blue jacket", "a broken clock", "some fresh bread", "the garden gate", "a letter"]
    places = ["near the station", "in the garden", "after lunch", "on Monday morning", "before the storm",
              "at the market", "behind the library", "during the holidays", "with her brother", "last week"]
    return " ".join(f"{names[i % 9]} {verbs[(i * 3) % 8]} {things[(i * 5) % 11]} {places[(i * 7) % 10]}."
                     for i in range(start, start + n))


def wav_bytes(samples: np.ndarray, rate: int = SAMPLE_RATE) -> bytes:
    """A mono 16-bit PCM WAV of ``samples`` (floats in [-1, 1], clipped) at ``rate`` Hz, in memory."""
    import io
    import wave

    out = io.BytesIO()
    with wave.open(out, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    return out.getvalue()


def read_wav_float32(path: Path) -> np.ndarray:
    """Read a mono WAV as float32 in [-1, 1] (what whisper / faster-whisper accept as an array)."""
    import soundfile as sf

    data, _rate = sf.read(str(path), dtype="float32", always_2d=True)
    return np.ascontiguousarray(data.mean(axis=1))


# ---------------------------------------------------------------- audio encoding

# fmt -> (PyAV container format, codec candidates in preference order, encoder sample rate)
_AUDIO_FORMATS: dict[str, tuple[str, tuple[str, ...], int]] = {
    "flac": ("flac", ("flac",), SAMPLE_RATE),
    "ogg": ("ogg", ("libvorbis", "vorbis", "libopus", "opus"), SAMPLE_RATE),
    "mp3": ("mp3", ("libmp3lame", "mp3"), SAMPLE_RATE),
    "m4a": ("ipod", ("aac",), SAMPLE_RATE),
    "webm": ("webm", ("libopus", "opus", "libvorbis", "vorbis"), SAMPLE_RATE),
}
AUDIO_FORMATS = tuple(_AUDIO_FORMATS)


def _pick_encoder(fmt: str) -> str | None:
    import av

    for name in _AUDIO_FORMATS[fmt][1]:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # noqa: BLE001 - any failure means "not available in this build"
            continue
        return name
    return None


def audio_format_supported(fmt: str) -> bool:
    """True if this PyAV build has an encoder for ``fmt``."""
    return fmt in _AUDIO_FORMATS and _pick_encoder(fmt) is not None


def convert_audio(src_wav: Path, dst: Path, fmt: str) -> Path:
    """Encode ``src_wav`` into ``dst`` as flac / ogg / mp3 / m4a / webm with PyAV (16 kHz).

    ogg uses Vorbis (FFmpeg's native encoder: stereo, the mono signal duplicated; Opus if no Vorbis encoder),
    webm uses Opus (decodes at 48 kHz), mp3 uses LAME, m4a is AAC in an MP4 (ipod) container.
    Raises ``RuntimeError`` if this PyAV build has no encoder for ``fmt``, ``ValueError`` for unknown formats.
    """
    import av

    fmt = fmt.lower().lstrip(".")
    if fmt not in _AUDIO_FORMATS:
        raise ValueError(f"unknown audio format {fmt!r}; expected one of {AUDIO_FORMATS}")
    container_fmt, candidates, rate = _AUDIO_FORMATS[fmt]
    codec_name = _pick_encoder(fmt)
    if codec_name is None:
        raise RuntimeError(f"this PyAV build has no encoder for {fmt} (tried {', '.join(candidates)})")
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)

    with av.open(str(src_wav)) as src, av.open(str(dst), mode="w", format=container_fmt) as out:
        stream = out.add_stream(codec_name, rate=rate)
        if codec_name in ("vorbis", "opus"):  # FFmpeg's native encoders are flagged experimental
            stream.codec_context.options = {"strict": "experimental"}
        # FFmpeg's native Vorbis encoder only supports 2 channels: the mono signal is duplicated.
        layout = "stereo" if codec_name == "vorbis" else "mono"
        stream.layout = layout
        stream.time_base = Fraction(1, rate)
        stream.codec_context.time_base = Fraction(1, rate)
        # Pick a sample format the encoder accepts (prefer packed s16, then float).
        fmts = [f.name for f in (stream.codec_context.codec.audio_formats or [])]
        sample_fmt = next((f for f in ("s16", "s16p", "flt", "fltp", "s32", "s32p") if f in fmts), fmts[0])
        stream.format = sample_fmt
        resampler = av.AudioResampler(format=sample_fmt, layout=layout, rate=rate)
        frame_size = stream.codec_context.frame_size or 1024
        fifo = av.AudioFifo()
        pts = 0

        def drain(final: bool) -> None:
            nonlocal pts
            while fifo.samples >= frame_size or (final and fifo.samples > 0):
                frame = fifo.read(frame_size) if fifo.samples >= frame_size else fifo.read()
                frame.pts = pts
                frame.time_base = Fraction(1, rate)
                pts += frame.samples
                for packet in stream.encode(frame):
                    out.mux(packet)

        for frame in src.decode(audio=0):
            frame.pts = None
            for rframe in resampler.resample(frame):
                rframe.pts = None
                fifo.write(rframe)
            drain(final=False)
        for rframe in resampler.resample(None):
            rframe.pts = None
            fifo.write(rframe)
        drain(final=True)
        for packet in stream.encode(None):
            out.mux(packet)
    return dst


def decode_audio(path: Path) -> tuple[np.ndarray, int]:
    """Decode any audio file with PyAV to mono float32 at its native rate: ``(samples, rate)``."""
    import av

    chunks: list[np.ndarray] = []
    with av.open(str(path)) as f:
        rate = f.streams.audio[0].codec_context.sample_rate
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        for frame in f.decode(audio=0):
            for r in resampler.resample(frame):
                chunks.append(r.to_ndarray().reshape(-1))
        for r in resampler.resample(None):
            chunks.append(r.to_ndarray().reshape(-1))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples.astype(np.float32, copy=False), rate


# ---------------------------------------------------------------- images

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "TIFF", "BMP")
IMAGE_MODES = ("RGB", "L", "P")


def stored_image_mode(fmt: str, mode: str) -> str:
    """The mode Pillow reports when reopening an image saved by ``render_text_image`` (WebP is always RGB)."""
    return "RGB" if fmt.upper() == "WEBP" else mode


def render_text_image(
    lines: list[str], path: Path, fmt: str = "PNG", mode: str = "RGB", font_size: int = 40
) -> Path:
    """Render ``lines`` as black DejaVuSans text on white and save as ``fmt`` (PNG/JPEG/WEBP/TIFF/BMP).

    ``mode`` is "RGB", "L" (greyscale) or "P" (palette). JPEG cannot store palette images (ValueError);
    WebP has no greyscale/palette storage, so L/P WEBP files are written and reopen as RGB.
    """
    from PIL import Image, ImageDraw, ImageFont

    fmt = fmt.upper()
    if fmt == "JPG":
        fmt = "JPEG"
    if fmt not in IMAGE_FORMATS:
        raise ValueError(f"unknown image format {fmt!r}; expected one of {IMAGE_FORMATS}")
    if mode not in IMAGE_MODES:
        raise ValueError(f"unknown image mode {mode!r}; expected one of {IMAGE_MODES}")
    if fmt == "JPEG" and mode == "P":
        raise ValueError("JPEG cannot store palette (mode 'P') images")

    font = ImageFont.truetype(str(FONT_PATH), font_size)
    margin = font_size
    line_height = int(font_size * 1.6)
    widths = [int(font.getlength(line)) for line in lines] or [0]
    width = max(widths) + 2 * margin
    height = line_height * max(len(lines), 1) + 2 * margin
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        draw.text((margin, margin + i * line_height), line, fill="black", font=font)

    if mode == "L":
        img = img.convert("L")
    elif mode == "P":
        img = img.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_kwargs: dict[str, object] = {}
    if fmt in ("JPEG", "WEBP"):
        save_kwargs["quality"] = 95
    img.save(str(path), fmt, **save_kwargs)
    return path


# ---------------------------------------------------------------- scoring

_PUNCT = re.compile(r"[^\w\s']|_")


def normalize_words(text: str) -> list[str]:
    """Lowercase, drop punctuation (keeping in-word apostrophes) and split into words."""
    words = _PUNCT.sub(" ", text.lower()).split()
    return [w.strip("'") for w in words if w.strip("'")]


def _levenshtein(a: list[str] | str, b: list[str] | str) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def word_error_rate(ref: str, hyp: str) -> float:
    """Word-level edit distance divided by the number of reference words (after ``normalize_words``)."""
    r, h = normalize_words(ref), normalize_words(hyp)
    if not r:
        return 0.0 if not h else 1.0
    return _levenshtein(r, h) / len(r)


def char_error_rate(ref: str, hyp: str) -> float:
    """Character-level edit distance / reference length, after lowercasing and collapsing whitespace."""
    r, h = (" ".join(s.lower().split()) for s in (ref, hyp))
    if not r:
        return 0.0 if not h else 1.0
    return _levenshtein(r, h) / len(r)
