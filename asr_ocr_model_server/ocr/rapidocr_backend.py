"""OCR through RapidOCR 3.x with the PP-OCR ONNX models bundled in its wheel (embedded default)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from asr_ocr_model_server.backend_options import RapidOcrOptions
from asr_ocr_model_server.ocr.lines import TextLine, blank_image
from serving_core import load_progress
from serving_core.errors import PermanentLoadError
from serving_core.specs import ModelSpec, parse_options


class RapidOcrModel:
    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def read(self, image: Image.Image) -> list[TextLine]:
        out = self.engine(np.asarray(image.convert("RGB")))
        if out.txts is None or out.boxes is None:
            return []
        return [
            TextLine(text=str(t), confidence=round(float(s), 4), box=[[float(x), float(y)] for x, y in b])
            for t, s, b in zip(out.txts, out.scores, np.asarray(out.boxes).tolist(), strict=False)
        ]

    def warmup(self) -> None:
        self.read(blank_image())


def weights(spec: ModelSpec, model_dir: str | None) -> Path | None:
    """The folder of ONNX models bundled in RapidOCR's wheel (the only ones it serves here), found
    without importing RapidOCR."""
    found = importlib.util.find_spec("rapidocr")
    return Path(found.origin).parent / "models" if found is not None and found.origin else None


def load(spec: ModelSpec, model_dir: str | None) -> RapidOcrModel:
    opts = parse_options(RapidOcrOptions, spec)
    if spec.path is not None:
        # Other RapidOCR model files would be fetched from a hub on first use: not here.
        raise PermanentLoadError("rapidocr serves only the models bundled in its wheel; omit `path`")
    load_progress.report(0.0, "importing rapidocr and onnxruntime")
    from rapidocr import RapidOCR

    threads = opts.threads or -1
    engine = RapidOCR(params={
        "Global.log_level": "warning",
        "Global.text_score": opts.text_score,
        "Global.use_cls": opts.use_cls,
        "Det.limit_type": opts.limit_type,
        "Det.limit_side_len": opts.limit_side_len,
        "EngineConfig.onnxruntime.intra_op_num_threads": threads,
    })
    # RapidOCR creates its ONNX sessions lazily on the first image. Create them now, so that
    # "ready" means loaded and the first request does not pay for it.
    sessions = ("_load_det_model", "_load_cls_model", "_load_rec_model")
    for done, name in enumerate(sessions):
        # Measured: the import is about half of the load, the three sessions the rest.
        load_progress.report(0.5 + 0.5 * done / len(sessions), f"creating the {name.split('_')[2]} session")
        init = getattr(engine, name, None)
        if init is not None:
            init()
    return RapidOcrModel(engine)
