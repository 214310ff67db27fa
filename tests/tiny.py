"""Tiny random causal LMs (Llama, Mistral, Qwen2, Qwen3, Gemma 3, Phi-3) and a tokenizer,
built locally in seconds (no downloads)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerFast

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)


def _byte_alphabet() -> dict[int, str]:
    """GPT-2's reversible byte -> printable character map (what ByteLevel emits)."""
    printable = [
        *range(ord("!"), ord("~") + 1),
        *range(ord("¡"), ord("¬") + 1),
        *range(ord("®"), ord("ÿ") + 1),
    ]
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, chars, strict=True)}


def tiny_tokenizer() -> PreTrainedTokenizerFast:
    """A byte-level tokenizer (every UTF-8 byte is a token, CJK included) with ChatML specials."""
    specials = ["<|im_start|>", "<|im_end|>", "<|endoftext|>"]
    vocab = {char: byte for byte, char in _byte_alphabet().items()}
    vocab.update({token: 256 + i for i, token in enumerate(specials)})
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            pre_tokenizers.Split("", "isolated"),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(specials)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    tokenizer.chat_template = CHATML
    return tokenizer


def _common(vocab_size: int, layers: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "hidden_size": 64,  # bitsandbytes 4-bit on the CPU fails below 64
        "intermediate_size": 128,
        "num_hidden_layers": layers,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "eos_token_id": 257,
        "pad_token_id": 258,
        "bos_token_id": None,
    }


# Each architecture Axolotl's examples name, at toy size. A short sliding window (where the
# architecture has one) makes the windowed layers differ from full attention on test rows;
# Qwen2 ties its head to the embeddings, as its small checkpoints do.
ARCHITECTURES: dict[str, tuple[str, str, dict[str, Any]]] = {
    "llama": ("LlamaConfig", "LlamaForCausalLM", {"tie_word_embeddings": False}),
    "mistral": ("MistralConfig", "MistralForCausalLM", {"sliding_window": 8}),
    "qwen2": ("Qwen2Config", "Qwen2ForCausalLM", {"tie_word_embeddings": True}),
    "qwen3": ("Qwen3Config", "Qwen3ForCausalLM", {"head_dim": 16}),
    "gemma3": (
        "Gemma3TextConfig",
        "Gemma3ForCausalLM",
        {
            "head_dim": 16,
            "query_pre_attn_scalar": 16,
            "sliding_window": 8,
            "layer_types": ["sliding_attention", "full_attention"],
        },
    ),  # fmt: skip
    "phi3": ("Phi3Config", "Phi3ForCausalLM", {"sliding_window": 8}),
}


def tiny_model(arch: str = "llama", vocab_size: int = 259, seed: int = 0, layers: int = 2,
               **config: Any) -> PreTrainedModel:  # fmt: skip
    """A tiny random causal LM of ``arch`` (a key of ARCHITECTURES) for the tiny tokenizer."""
    import transformers

    config_name, model_name, extra = ARCHITECTURES[arch]
    settings = {**_common(vocab_size, layers), **extra, **config}
    if arch == "gemma3":
        settings["layer_types"] = (settings["layer_types"] * layers)[:layers]
    torch.manual_seed(seed)
    model_config = getattr(transformers, config_name)(**settings)
    return getattr(transformers, model_name)(model_config)


def tiny_llama(vocab_size: int = 259, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    return tiny_model("llama", vocab_size, seed, layers)


def save_tiny_model(path: Path, seed: int = 0, layers: int = 2, arch: str = "llama") -> Path:
    """Write a tiny model (Llama unless ``arch`` says) and its tokenizer as a checkpoint folder."""
    tiny_model(arch, seed=seed, layers=layers).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path


def save_tiny_model_with_embedded_tokenizer(path: Path, arch: str = "llama") -> Path:
    """A tiny random model with the embedded SmolLM2's real tokenizer (49,152 tokens):
    what llama.cpp's converter accepts, where it refuses the tiny byte-level tokenizer."""
    from transformers import AutoTokenizer

    from ft_plugin.models import resolve_base_model

    tokenizer = AutoTokenizer.from_pretrained(
        resolve_base_model("embedded:smollm2-135m-instruct").path
    )
    model = tiny_model(arch, vocab_size=len(tokenizer), eos_token_id=tokenizer.eos_token_id,
                       pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id)  # fmt: skip
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
