"""ASR/OCR server on its defaults (faster-whisper tiny.en + RapidOCR): spawn → /health 200 (healthy),
divided by the floor = fresh-process `import fastapi, uvicorn, faster_whisper, rapidocr,
asr_ocr_model_server.app` + the slowest single in-process load of one default model (each in its
own fresh process, imports excluded from the load). Target ≤ 1.25.
"""

from __future__ import annotations

from pathlib import Path

import common

from asr_ocr_model_server.settings import DEFAULT_ASR_NAME, DEFAULT_OCR_NAME

FLOOR = "floor: import + slowest single load"
OURS = "server: whisper-tiny.en + rapidocr"
IMPORTS = ["fastapi", "uvicorn", "faster_whisper", "rapidocr", "asr_ocr_model_server.app"]


def model_files() -> list[Path]:
    """The default models' weight files (for --cold)."""
    from coldstart.targets import ServerTarget
    from coldstart.targets import model_files as weights_of
    from serving_core import read_ahead

    return list(read_ahead.files_in(weights_of(ServerTarget(common.ASR_OCR))))


def main() -> None:
    args = common.parse_args(__doc__, cold_flag=True)
    files = model_files() if args.cold else []
    loads = [["load-asr-ocr", DEFAULT_ASR_NAME], ["load-asr-ocr", DEFAULT_OCR_NAME]]
    res = common.interleave(args.runs, args.warmup, {
        FLOOR: common.floor_measure(IMPORTS, loads, files, args.cold),
        OURS: common.ready_measure(common.asr_ocr_cmd, files, args.cold),
    })
    common.report("bench_asr_vs_floor", args, [common.compare(res, FLOOR, OURS, 1.25)],
                  extra={"page_cache": "cold (model files evicted)" if args.cold else "warm",
                         "floor_import_s_median": common.medians_of(res[FLOOR], "import"),
                         f"floor_single_loads_s_median [{DEFAULT_ASR_NAME}, {DEFAULT_OCR_NAME}]":
                             common.medians_of(res[FLOOR], "loads"),
                         "server_reported_load_s_median": common.medians_of(res[OURS], "load_seconds")})


if __name__ == "__main__":
    main()
