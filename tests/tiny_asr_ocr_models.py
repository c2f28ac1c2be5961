"""Build tiny random-weight ASR / OCR models on disk that load fully offline.

* ``write_tiny_openai_whisper`` - an openai-whisper checkpoint (~3.5 MB) for ``whisper.load_model(path)`` that
  always transcribes ``TINY_WHISPER_TEXT`` (deterministic, fast with default transcribe options).
* ``write_tiny_vision_ocr`` - a ``VisionEncoderDecoderModel`` (ViT + TrOCR decoder) with a byte-level BPE
  tokenizer and ``TrOCRProcessor``, for ``AutoModelForImageTextToText`` / ``AutoProcessor``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

_EMBED_SCALE = 5.0  # chain-token embedding norm: next-token logit ~ sqrt(n_state) * 5 ~ 28 vs ~0 for the rest


def _chain_directions(n_state: int, n: int) -> Any:
    """``n`` orthonormal, zero-mean rows of size ``n_state`` (LayerNorm maps each to itself times sqrt(n_state))."""
    import torch

    a = torch.randn(n_state, n)
    return torch.linalg.qr(a - a.mean(dim=0, keepdim=True))[0].T  # QR of zero-mean columns stays zero-mean


def _set_successor_mlp(fc1: Any, fc2: Any, u: Any, gain: float = 10.0) -> None:
    """Make ``fc2(gelu(fc1(x)))`` == ``gain * sum_i u[i+1] u[i]^T x`` (exact, since gelu(z) - gelu(-z) == z)."""
    import torch

    n_state = u.shape[1]
    step = gain * sum(torch.outer(u[i + 1], u[i]) for i in range(len(u) - 1))
    for w in (fc1.weight, fc1.bias, fc2.weight, fc2.bias):
        w.zero_()
    fc1.weight[:n_state] = step
    fc1.weight[n_state : 2 * n_state] = -step
    fc2.weight[:, :n_state] = torch.eye(n_state)
    fc2.weight[:, n_state : 2 * n_state] = -torch.eye(n_state)


# What the tiny whisper model "hears" in every 30 s window, whatever the audio (see write_tiny_openai_whisper).
TINY_WHISPER_TEXT = " Hello from the tiny whisper model."


def write_tiny_openai_whisper(path: Path, seed: int = 0, text: str = TINY_WHISPER_TEXT, n_state: int = 32,
                              end_time: float = 1.0, half: bool = True, multilingual_task: str | None = None) -> Path:
    """Write a tiny English-only openai-whisper checkpoint (~3.5 MB) loadable by ``whisper.load_model``;
    with ``multilingual_task`` ("transcribe" or "translate") a multilingual one (n_vocab 51865) that
    detects English and decodes ``text`` for that task only.

    Weights are random except for a hand-set decoder that ignores the audio and deterministically decodes
    ``<|0.00|> text <|end_time|> <|endoftext|>`` with near-certain confidence, for every 30 s window. That
    keeps ``whisper.transcribe(model, audio, fp16=False)`` fast and bounded with default options (no
    temperature-fallback re-decodes: avg_logprob ~ 0, low compression ratio, no_speech_prob ~ 0), and gives
    tests a known transcript: ``result["text"] == text.strip()`` for audio up to 30 s.

    How: positional embeddings, self- and cross-attention outputs are zeroed; the chain tokens get orthogonal
    zero-mean embeddings and the MLP (using gelu(z) - gelu(-z) == z) maps each chain token's direction onto
    the next one's, so the tied output projection picks the next chain token from the current token only
    (prompts from ``condition_on_previous_text`` do not shift it). n_vocab=51864 selects the English (gpt2)
    tokenizer, so transcribe skips language detection; n_audio_ctx must stay 1500 (30 s of 80-bin log-mel
    frames after the stride-2 conv). Weights are stored as float16 by default (load_state_dict upcasts).
    """
    import torch
    import whisper.model
    from whisper.tokenizer import get_tokenizer

    multilingual = multilingual_task is not None
    tok = (get_tokenizer(multilingual=True, language="en", task=multilingual_task) if multilingual
           else get_tokenizer(multilingual=False))
    text_ids = tok.encode(text)
    end_index = round(end_time / 0.02)
    if not 0 < end_index <= 1500:
        raise ValueError("end_time must be in (0, 30] seconds")
    chain = [*tok.sot_sequence, tok.timestamp_begin, *text_ids, tok.timestamp_begin + end_index, tok.eot]
    if len(set(chain)) != len(chain) or len(chain) > n_state - 1:
        raise ValueError(f"text must encode to at most {n_state - 5} distinct tokens, got {text_ids}")

    torch.manual_seed(seed)
    dims = whisper.model.ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=n_state,
        n_audio_head=2,
        n_audio_layer=1,
        n_vocab=51865 if multilingual else 51864,
        n_text_ctx=448,
        n_text_state=n_state,  # cross-attention needs n_text_state == n_audio_state
        n_text_head=2,
        n_text_layer=1,
    )
    model = whisper.model.Whisper(dims)
    dec = model.decoder
    block = dec.blocks[0]
    with torch.no_grad():
        u = _chain_directions(n_state, len(chain))

        # positional_embedding is created with torch.empty (garbage / NaN logits); zero it: position-free.
        dec.positional_embedding.zero_()
        dec.token_embedding.weight.normal_(std=0.02)
        for i, t in enumerate(chain):
            dec.token_embedding.weight[t] = _EMBED_SCALE * u[i]
        for attn in (block.attn, block.cross_attn):
            attn.out.weight.zero_()
            attn.out.bias.zero_()
        _set_successor_mlp(block.mlp[0], block.mlp[2], u)

    state = model.state_dict()
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"dims": asdict(dims), "model_state_dict": state}, str(path))
    return path


# What the tiny OCR model "reads" in every image (see write_tiny_vision_ocr).
TINY_OCR_TEXT = "Hello tiny OCR"

OCR_SENTENCES = [
    TINY_OCR_TEXT,
    "The quick brown fox jumps over the lazy dog.",
    "Invoice number 12345, total 99.50 EUR, due on 2024-01-31.",
    "Hello world! Optical character recognition reads printed text.",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ abcdefghijklmnopqrstuvwxyz 0123456789",
]


def write_tiny_vision_ocr(directory: Path, seed: int = 0, text: str = TINY_OCR_TEXT, image_size: int = 32) -> Path:
    """Save a tiny ``VisionEncoderDecoderModel`` (ViT + TrOCR decoder) + ``TrOCRProcessor`` into ``directory``.

    ~0.2 MB. The vision encoder is random; the decoder is hand-set (same trick as the tiny whisper: attention
    outputs and positions zeroed, MLP maps each chain token to the next) so that, whatever the image,
    ``generate`` yields ``<s> text </s>`` and ``batch_decode(..., skip_special_tokens=True) == [text]``
    (``text`` must be at most ~6 BPE tokens to fit ``max_new_tokens=8``).

    Load with ``AutoModelForImageTextToText.from_pretrained(directory)`` and
    ``AutoProcessor.from_pretrained(directory)`` (resolves to ``TrOCRProcessor``: ``ViTImageProcessorPil`` +
    ``PreTrainedTokenizerFast``, which transformers 5 loads back as ``TokenizersBackend``; no torchvision needed).
    """
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import (
        PreTrainedTokenizerFast,
        TrOCRConfig,
        TrOCRProcessor,
        VisionEncoderDecoderConfig,
        VisionEncoderDecoderModel,
        ViTConfig,
        ViTImageProcessorPil,
    )

    hidden = 32  # encoder and decoder width (equal, so no enc_to_dec projection)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    # Byte-level BPE tokenizer: ids 0-3 are the special tokens. No full 256-byte initial alphabet, so every
    # token is printable ASCII from OCR_SENTENCES and decoded gibberish never contains U+FFFD.
    specials = ["<pad>", "<s>", "</s>", "<unk>"]
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        show_progress=False,
    )
    bpe.train_from_iterator(OCR_SENTENCES, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, pad_token="<pad>", bos_token="<s>", eos_token="</s>", unk_token="<unk>"
    )
    pad_id, bos_id, eos_id = (tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<s>", "</s>"))

    image_processor = ViTImageProcessorPil(
        size={"height": image_size, "width": image_size},
        do_resize=True,
        do_rescale=True,
        do_normalize=True,
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )

    encoder = ViTConfig(
        hidden_size=hidden,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        image_size=image_size,
        patch_size=8,
        num_channels=3,
    )
    decoder = TrOCRConfig(
        vocab_size=len(tokenizer),
        d_model=hidden,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=2 * hidden,  # _set_successor_mlp needs >= 2 * hidden
        max_position_embeddings=64,
        pad_token_id=pad_id,
        bos_token_id=bos_id,
        eos_token_id=eos_id,
        decoder_start_token_id=bos_id,
        cross_attention_hidden_size=hidden,
        is_decoder=True,
        add_cross_attention=True,
    )
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
    config.decoder_start_token_id = bos_id
    config.pad_token_id = pad_id
    config.eos_token_id = eos_id
    config.bos_token_id = bos_id
    config.vocab_size = len(tokenizer)

    torch.manual_seed(seed)
    model = VisionEncoderDecoderModel(config=config)
    text_ids = tokenizer(text, add_special_tokens=False).input_ids
    chain = [bos_id, *text_ids, eos_id]
    if len(set(chain)) != len(chain) or len(chain) > hidden - 1:
        raise ValueError(f"text must encode to distinct tokens, got {tokenizer.convert_ids_to_tokens(text_ids)}")
    dec = model.decoder.model.decoder
    layer = dec.layers[0]
    with torch.no_grad():
        u = _chain_directions(hidden, len(chain))
        dec.embed_tokens.weight.normal_(std=0.02)
        for i, t in enumerate(chain):
            dec.embed_tokens.weight[t] = _EMBED_SCALE * u[i]
        model.decoder.output_projection.weight.copy_(dec.embed_tokens.weight)  # tied; copy in case it is not
        dec.embed_positions.weight.zero_()
        for attn in (layer.self_attn, layer.encoder_attn):
            attn.out_proj.weight.zero_()
            attn.out_proj.bias.zero_()
        for ln in (dec.layernorm_embedding, layer.self_attn_layer_norm, layer.encoder_attn_layer_norm,
                   layer.final_layer_norm):
            ln.weight.fill_(1.0)
            ln.bias.zero_()
        _set_successor_mlp(layer.fc1, layer.fc2, u)
    model.generation_config.decoder_start_token_id = bos_id
    model.generation_config.bos_token_id = bos_id
    model.generation_config.pad_token_id = pad_id
    model.generation_config.eos_token_id = eos_id
    model.save_pretrained(str(directory))
    TrOCRProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(directory))
    return directory
