"""Tiny random Llama models and a tokenizer built locally in seconds (no downloads)."""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

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


def tiny_llama(vocab_size: int = 259, seed: int = 0, layers: int = 2) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=64,  # bitsandbytes 4-bit on the CPU fails below 64
        intermediate_size=128,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        eos_token_id=257,
        pad_token_id=258,
        bos_token_id=None,
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config)


def save_tiny_model(path: Path, seed: int = 0, layers: int = 2) -> Path:
    """Write a tiny Llama and its tokenizer as an ordinary checkpoint folder."""
    tiny_llama(seed=seed, layers=layers).save_pretrained(path)
    tiny_tokenizer().save_pretrained(path)
    return path
