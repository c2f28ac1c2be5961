"""OCR through a local transformers image-text-to-text model directory (dots.ocr-style models, TrOCR, …)."""

from __future__ import annotations

from typing import Any

from PIL import Image

from asr_ocr_model_server.backend_options import TransformersOcrOptions
from asr_ocr_model_server.ocr.lines import TextLine, blank_image
from serving_core.errors import PermanentLoadError
from serving_core.specs import ModelSpec, parse_options, require_path


class TransformersOcrModel:
    def __init__(self, model: Any, processor: Any, opts: TransformersOcrOptions) -> None:
        self.model = model
        self.processor = processor
        self.opts = opts

    def read(self, image: Image.Image) -> list[TextLine]:
        import torch

        kwargs: dict[str, Any] = {"images": image.convert("RGB"), "return_tensors": "pt"}
        if self.opts.prompt is not None:
            kwargs["text"] = self.opts.prompt
        inputs = self.processor(**kwargs)
        with torch.inference_mode():
            ids = self.model.generate(**inputs, max_new_tokens=self.opts.max_new_tokens)
        if self.opts.prompt is not None and "input_ids" in inputs and not self.model.config.is_encoder_decoder:
            ids = ids[:, inputs["input_ids"].shape[1]:]  # decoder-only models echo the prompt
        text = self.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()
        return [TextLine(text=line, confidence=None, box=None) for line in text.splitlines() if line.strip()]

    def warmup(self) -> None:
        self.read(blank_image())


def load(spec: ModelSpec, model_dir: str | None) -> TransformersOcrModel:
    opts = parse_options(TransformersOcrOptions, spec)
    path = spec.resolved_path(model_dir)
    if path is None:
        raise PermanentLoadError("transformers OCR needs `path`: a local model directory")
    require_path(path, "transformers model directory", "directory", spec.path_hint(model_dir))
    if not (path / "config.json").is_file():
        raise PermanentLoadError(f"not a transformers model directory (no config.json): {path}")
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    if opts.threads:
        torch.set_num_threads(opts.threads)
    dtype = "auto" if opts.dtype == "auto" else getattr(torch, opts.dtype)
    common = {"trust_remote_code": opts.trust_remote_code, "local_files_only": True}
    processor = AutoProcessor.from_pretrained(str(path), **common)
    model = AutoModelForImageTextToText.from_pretrained(str(path), dtype=dtype, **common)
    model.eval()
    return TransformersOcrModel(model, processor, opts)
