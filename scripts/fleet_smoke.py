"""Does the `fleet` pack serve for real? Starts both servers on configs/fleet.yaml and
configs/fleet-asr-ocr.yaml (install the pack first: python -m model_store install fleet), then:
a chat question to Qwen2.5-Coder 1.5B, synthesized speech to Whisper base, rendered text to
RapidOCR. Prints the answers; exit 0 when each one is right. Needs espeak-ng and sox (make test
installs them).

    python scripts/fleet_smoke.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

from coldstart.processes import ServerProcess, module_command, server_env  # noqa: E402

from media import render_text_image, speak_wav  # noqa: E402

SPEECH = "the quick brown fox jumps over the lazy dog"
TEXT = "FLEET OCR 42"


def main() -> int:
    tmp = Path(tempfile.mkdtemp(prefix="fleet-smoke-"))
    wav = speak_wav(SPEECH, tmp / "speech.wav", speed=150, word_gap=5)
    png = render_text_image([TEXT], tmp / "text.png")
    gguf = ServerProcess(module_command("gguf_model_server", REPO / "configs/fleet.yaml"), tmp / "gguf.log",
                         env=server_env())
    asr = ServerProcess(module_command("asr_ocr_model_server", REPO / "configs/fleet-asr-ocr.yaml"),
                        tmp / "asr.log", env=server_env())
    failures = []
    try:
        for srv in (gguf, asr):
            health = srv.wait_settled(300)
            if health["status"] != "healthy":
                failures.append(f"{srv.url}: {health['status']}: {health['message']}")
        if failures:
            return report(failures)
        chat = gguf.client.post("/v1/chat/completions", json={
            "model": "qwen2.5-1.5b-instruct", "max_tokens": 20, "temperature": 0,
            "messages": [{"role": "user", "content": "What is the capital of France? One sentence."}]}).json()
        answer = chat["choices"][0]["message"]["content"]
        print(f"qwen2.5-1.5b-instruct: {answer!r}")
        if "Paris" not in answer:
            failures.append(f"chat answer without Paris: {answer!r}")
        heard = asr.client.post("/asr", files={"audio": ("speech.wav", wav.read_bytes(), "audio/wav")},
                                data={"model": "whisper-base"}).json()
        print(f"whisper-base: {heard['transcript']!r} (language {heard['language']})")
        if "fox" not in heard["transcript"].lower() or "dog" not in heard["transcript"].lower():
            failures.append(f"transcript does not match {SPEECH!r}: {heard['transcript']!r}")
        read = asr.client.post("/ocr", files={"image": ("text.png", png.read_bytes(), "image/png")}).json()
        print(f"rapidocr: {read['extracted_text']!r}")
        if "FLEET" not in read["extracted_text"].upper():
            failures.append(f"OCR does not match {TEXT!r}: {read['extracted_text']!r}")
    finally:
        gguf.stop()
        asr.stop()
        if not failures:
            shutil.rmtree(tmp, ignore_errors=True)  # kept (with the servers' logs) after a failure
    if failures:
        print(f"media and server logs kept in {tmp}", file=sys.stderr)
    return report(failures)


def report(failures: list[str]) -> int:
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    print("fleet smoke test:", "FAILED" if failures else "PASS")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
