"""Build tiny llama-architecture GGUF files (random weights, ~0.5 MB) for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_VOCAB = 300
N_EMBD = 64
N_FF = 128
N_HEAD = 4
N_LAYER = 2
N_CTX = 256


def write_tiny_gguf(path: Path, seed: int = 0) -> Path:
    """Write a loadable, generating (gibberish) llama model with a 300-token vocabulary."""
    import gguf

    rng = np.random.default_rng(seed)
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_context_length(N_CTX)
    w.add_embedding_length(N_EMBD)
    w.add_block_count(N_LAYER)
    w.add_feed_forward_length(N_FF)
    w.add_head_count(N_HEAD)
    w.add_head_count_kv(N_HEAD)
    w.add_rope_dimension_count(N_EMBD // N_HEAD)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_tokenizer_model("llama")
    tokens: list[bytes] = [b"<unk>", b"<s>", b"</s>"]
    types = [gguf.TokenType.UNKNOWN, gguf.TokenType.CONTROL, gguf.TokenType.CONTROL]
    for i in range(256):
        tokens.append(f"<0x{i:02X}>".encode())
        types.append(gguf.TokenType.BYTE)
    words = ["▁the", "▁a", "▁of", "▁and", "▁to", "▁is", "▁in", "▁it", "▁capital", "▁France", "▁Paris"]
    i = 0
    while len(tokens) < N_VOCAB:
        tokens.append((words[i] if i < len(words) else f"▁w{i}").encode())
        types.append(gguf.TokenType.NORMAL)
        i += 1
    w.add_token_list(tokens)
    w.add_token_scores([0.0] * N_VOCAB)
    w.add_token_types(types)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_unk_token_id(0)

    def t(name: str, *shape: int) -> None:
        w.add_tensor(name, (rng.standard_normal(shape) * 0.02).astype(np.float32))

    t("token_embd.weight", N_VOCAB, N_EMBD)
    w.add_tensor("output_norm.weight", np.ones(N_EMBD, dtype=np.float32))
    t("output.weight", N_VOCAB, N_EMBD)
    for b in range(N_LAYER):
        w.add_tensor(f"blk.{b}.attn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        for n in ("q", "k", "v", "output"):
            t(f"blk.{b}.attn_{n}.weight", N_EMBD, N_EMBD)
        w.add_tensor(f"blk.{b}.ffn_norm.weight", np.ones(N_EMBD, dtype=np.float32))
        t(f"blk.{b}.ffn_gate.weight", N_FF, N_EMBD)
        t(f"blk.{b}.ffn_up.weight", N_FF, N_EMBD)
        t(f"blk.{b}.ffn_down.weight", N_EMBD, N_FF)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_truncated(src: Path, dst: Path) -> Path:
    """A copy cut in the middle of its tensor data, as an interrupted download leaves it."""
    data = src.read_bytes()
    dst.write_bytes(data[: len(data) // 2])
    return dst


def write_corrupt(dst: Path) -> Path:
    """A file with the GGUF magic followed by garbage."""
    dst.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    return dst
