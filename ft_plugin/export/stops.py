"""The tokens that end an answer: what a chat template writes right after the assistant's
text (``<|im_end|>``, ``<|eot_id|>``, ``<end_of_turn>``…) and the tokenizer's EOS.

Exported models loop or run on when these do not travel with the weights (the most
reported export bug in llama.cpp / Ollama trackers), so every export writes them and the
load-back check reads them from the exported file.
"""

from __future__ import annotations

from typing import Any

_ANSWER = "FTPLUGINANSWERMARK"


def end_of_turn_tokens(tokenizer: Any) -> list[str]:
    """The special token the chat template puts after an answer, then EOS (no repeats).

    Example:
        >>> from transformers import AutoTokenizer
        >>> from ft_plugin.models import resolve_base_model
        >>> tok = AutoTokenizer.from_pretrained(resolve_base_model("embedded:smollm2-135m-instruct").path)
        >>> end_of_turn_tokens(tok)
        ['<|im_end|>']
    """
    tokens: list[str] = []
    after = _text_after_answer(tokenizer)
    if after:
        first = tokenizer.convert_ids_to_tokens(
            tokenizer(after, add_special_tokens=False)["input_ids"][:1]
        )
        if first and first[0] in tokenizer.all_special_tokens + _added_special(tokenizer):
            tokens.append(first[0])
    if tokenizer.eos_token and tokenizer.eos_token not in tokens:
        tokens.append(tokenizer.eos_token)
    return tokens


def _text_after_answer(tokenizer: Any) -> str:
    if not tokenizer.chat_template:
        return ""
    messages = [{"role": "user", "content": "Hello?"}, {"role": "assistant", "content": _ANSWER}]
    text = tokenizer.apply_chat_template(messages, tokenize=False)
    return text.split(_ANSWER, 1)[1].lstrip() if _ANSWER in text else ""


def _added_special(tokenizer: Any) -> list[str]:
    return [t.content for t in tokenizer.added_tokens_decoder.values() if t.special]
