"""A BERT sentence-embedding model in Hugging Face layout (config.json, model.safetensors,
tokenizer.json, modules.json and its pooling config) converted to a GGUF file llama.cpp runs.

It does what llama.cpp's convert_hf_to_gguf.py does for a ``BertModel`` with its default ``--outtype
f16``, without torch or transformers: the same hyperparameter keys, the same "phantom space"
WordPiece vocabulary and special tokens (through gguf's own ``SpecialVocab``, which the converter
calls), the same tensor names and types. It covers what the embedded all-MiniLM-L6-v2 needs (one F32
safetensors file, an uncased WordPiece tokenizer) and refuses anything else rather than guess.

The output is a pure function of the input files and the ``gguf`` package version (its writer and
``SpecialVocab`` decide the bytes), so the sha256 that ``model_store.embedded`` records holds.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import numpy.typing as npt

ARCH = gguf.MODEL_ARCH.BERT

# llama.cpp names a tokenizer's pre-tokenizer by hashing how the Hugging Face tokenizer splits a fixed
# text (get_vocab_base_pre). Uncased BERT WordPiece (BertNormalizer lowercasing + BertPreTokenizer),
# the tokenizer of all-MiniLM-L6-v2, gives hash 0876d13b…c15e19f, which llama.cpp calls "bert-bge".
# The hash needs transformers to compute, so the tokenizer is checked to be that kind instead.
BERT_UNCASED_PRE_TOKENIZER = "bert-bge"

# Tensors convert_hf_to_gguf.py's BertModel drops: only the encoder's last hidden states are used.
_DROPPED = ("embeddings.position_ids", "pooler.dense.weight", "pooler.dense.bias")
_DROPPED_PREFIXES = ("cls.predictions", "cls.seq_relationship")

# Of the matrices the converter keeps in F32 whatever the outtype (mirroring llama.cpp's quantizer,
# which never quantizes them), those a BERT model has.
_ALWAYS_F32 = tuple(gguf.TENSOR_NAMES[t] + ".weight"
                    for t in (gguf.MODEL_TENSOR.POS_EMBD, gguf.MODEL_TENSOR.TOKEN_TYPES))

_POOLING_MODULE = "sentence_transformers.models.Pooling"


def _read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def _hf_name(name: str) -> str | None:
    """The name the converter maps (its BertModel.filter_tensors), or None for a tensor it drops."""
    name = name.removeprefix("bert.")
    if name.endswith(".gamma"):
        name = name[: -len(".gamma")] + ".weight"
    if name.endswith(".beta"):
        name = name[: -len(".beta")] + ".bias"
    if name in _DROPPED or name.startswith(_DROPPED_PREFIXES):
        return None
    return name


def read_safetensors(path: Path) -> dict[str, npt.NDArray[np.float32]]:
    """The F32 tensors of a single-file safetensors checkpoint, by converter name, sorted by their
    original names (as safetensors and the converter list them: the GGUF's tensor order follows)."""
    with path.open("rb") as fh:
        header_len = int.from_bytes(fh.read(8), "little")
        header: dict[str, Any] = json.loads(fh.read(header_len))
        data_start = 8 + header_len
        tensors: dict[str, npt.NDArray[np.float32]] = {}
        for name in sorted(k for k in header if k != "__metadata__"):
            new_name = _hf_name(name)
            if new_name is None:
                continue
            meta = header[name]
            if meta["dtype"] != "F32":
                # The converter would keep F16 and BF16 inputs' types; this model ships F32 only.
                raise ValueError(f"{path}: tensor {name} is {meta['dtype']}; only F32 checkpoints are converted")
            begin, end = meta["data_offsets"]
            fh.seek(data_start + begin)
            raw = fh.read(end - begin)
            if len(raw) != end - begin:
                raise ValueError(f"{path}: truncated at tensor {name}")
            tensors[new_name] = np.frombuffer(raw, dtype="<f4").reshape(meta["shape"])
    return tensors


def gguf_type(name: str, array: npt.NDArray[np.float32]) -> gguf.GGMLQuantizationType:
    """The converter's choice for ``--outtype f16`` (its prepare_tensors): F32 for 1-D tensors, norms,
    non-weights and the always-F32 tensors; F16 for the other matrices."""
    if array.ndim <= 1 or name.endswith("_norm.weight") or name in _ALWAYS_F32 or not name.endswith(".weight"):
        return gguf.GGMLQuantizationType.F32
    return gguf.GGMLQuantizationType.F16


def _check_tokenizer(tokenizer: dict[str, Any]) -> None:
    model = tokenizer.get("model") or {}
    normalizer = tokenizer.get("normalizer") or {}
    pre = tokenizer.get("pre_tokenizer") or {}
    kind = (model.get("type"), model.get("continuing_subword_prefix"), normalizer.get("type"),
            normalizer.get("lowercase"), pre.get("type"))
    if kind != ("WordPiece", "##", "BertNormalizer", True, "BertPreTokenizer"):
        raise ValueError("the tokenizer is not an uncased BERT WordPiece tokenizer; its llama.cpp pre-tokenizer "
                         "name would be unverified")


def vocab(model_dir: Path, vocab_size: int) -> tuple[list[str], list[int]]:
    """The token texts in llama.cpp's "phantom space" form, and their token types (get_vocab_base and
    BertModel.set_vocab of the converter)."""
    tokenizer = _read_json(model_dir / "tokenizer.json")
    _check_tokenizer(tokenizer)
    by_id = {i: text for text, i in tokenizer["model"]["vocab"].items()}
    control: set[int] = set()
    for added in tokenizer.get("added_tokens", []):
        by_id[added["id"]] = added["content"]
        # The converter makes special added tokens CONTROL, others USER_DEFINED: BERT's are all special.
        if not added["special"]:
            raise ValueError(f"added token {added['content']!r} is not special; not handled")
        control.add(added["id"])
    if max(by_id) >= vocab_size:
        raise ValueError(f"token id {max(by_id)} is beyond the model's vocab_size {vocab_size}")
    tokens: list[str] = []
    types: list[int] = []
    for i in range(vocab_size):
        text = by_id.get(i)
        if text is None:
            tokens.append(f"[PAD{i}]")
            types.append(gguf.TokenType.UNUSED)
        elif i in control:
            tokens.append(text)
            types.append(gguf.TokenType.CONTROL)
        else:
            # llama.cpp's WPM tokenizer marks a word start with U+2581, not a "##" continuation mark.
            tokens.append(text[2:] if text.startswith("##") else "\u2581" + text)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def pooling_type(model_dir: Path) -> gguf.PoolingType | None:
    """The sentence-transformers pooling (the converter's _try_set_pooling_type), None when the model
    has no pooling module (llama.cpp then uses its per-architecture default)."""
    modules_file = model_dir / "modules.json"
    if not modules_file.is_file():
        return None
    pooling_dir = next((m["path"] for m in _read_json(modules_file) if m["type"] == _POOLING_MODULE), None)
    if pooling_dir is None:
        return None
    pooling = _read_json(model_dir / pooling_dir / "config.json")
    if pooling["pooling_mode_mean_tokens"]:
        return gguf.PoolingType.MEAN
    if pooling["pooling_mode_cls_token"]:
        return gguf.PoolingType.CLS
    if pooling.get("pooling_mode_lasttoken"):
        return gguf.PoolingType.LAST
    raise ValueError(f"{pooling_dir}: only MEAN, CLS and LAST pooling are supported by llama.cpp")


def convert(model_dir: Path, out: Path, *, name: str, licence: str) -> None:
    """Write the GGUF conversion of the BERT model in ``model_dir`` to ``out`` (created or replaced)."""
    try:
        config = _read_json(model_dir / "config.json")
        if "BertModel" not in config.get("architectures", []):
            raise ValueError(f"{model_dir}: not a BertModel (architectures: {config.get('architectures')})")
        block_count = int(config["num_hidden_layers"])
        tensors = read_safetensors(model_dir / "model.safetensors")
        tokens, token_types = vocab(model_dir, int(config["vocab_size"]))
        pooling = pooling_type(model_dir)
    except KeyError as exc:
        raise ValueError(f"{model_dir}: missing {exc}") from exc

    writer = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[ARCH])
    try:
        # The converter's order (write(): tensors, then metadata, hyperparameters, vocabulary); the
        # order is part of the bytes.
        tensor_map = gguf.get_tensor_name_map(ARCH, block_count)
        for hf_name, array in tensors.items():
            gguf_name = tensor_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
            if gguf_name is None:
                raise ValueError(f"{model_dir}: no llama.cpp BERT tensor for {hf_name!r}")
            qtype = gguf_type(gguf_name, array)
            writer.add_tensor(gguf_name, gguf.quants.quantize(array, qtype), raw_dtype=qtype)

        writer.add_type(gguf.GGUFType.MODEL)
        writer.add_name(name)
        writer.add_size_label(gguf.size_label(*writer.get_total_parameter_count()))
        writer.add_license(licence)

        writer.add_block_count(block_count)
        writer.add_context_length(int(config["max_position_embeddings"]))
        writer.add_embedding_length(int(config["hidden_size"]))
        writer.add_feed_forward_length(int(config["intermediate_size"]))
        writer.add_head_count(int(config["num_attention_heads"]))
        writer.add_layer_norm_eps(float(config["layer_norm_eps"]))
        writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
        writer.add_causal_attention(False)
        if pooling is not None:
            writer.add_pooling_type(pooling)
        writer.add_quantization_version(gguf.GGML_QUANT_VERSION)

        writer.add_token_type_count(int(config.get("type_vocab_size", 1)))
        writer.add_tokenizer_model("bert")
        writer.add_tokenizer_pre(BERT_UNCASED_PRE_TOKENIZER)
        writer.add_token_list(tokens)
        writer.add_token_types(token_types)
        # CLS as BOS and SEP as EOS (from tokenizer_config.json), UNK, PAD, and add_bos/add_eos from
        # the post-processor's [CLS] A [SEP] template: exactly what the converter writes. Its default
        # list of types also asks for CLS, which GGUF has no key for (llama.cpp takes BOS): that only
        # logs a warning at every install, so the list is given without it.
        special = gguf.SpecialVocab(model_dir, n_vocab=len(tokens),
                                    special_token_types=("bos", "eos", "unk", "sep", "pad", "mask"))
        special.add_to_gguf(writer, quiet=True)

        writer.write_header_to_file(path=out)
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
    except KeyError as exc:
        raise ValueError(f"{model_dir}: missing {exc}") from exc
    finally:
        writer.close()
