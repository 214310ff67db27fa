"""A GGUF file loaded back in llama.cpp itself (llama-cpp-python), not in our own reader:
its chat template, stop tokens and tokenizer must be the run's, and its answers and
answer NLL are compared with the run's (:mod:`.check`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from .check import ExportMismatch, Observed, Reference, nll_from_logits
from .stops import end_of_turn_tokens

_TEMPLATE_KEY = "tokenizer.chat_template"


def check_gguf(path: Path, tokenizer: Any, run: Reference, max_new_tokens: int, *,
               adapter: Path | None = None) -> Observed:  # fmt: skip
    """The GGUF's greedy answers to the run's prompts (formatted by llama.cpp from the
    file's own chat template) and its NLL of the run's scored rows; raises
    :class:`ExportMismatch` when the template or a stop token differs. How llama.cpp
    tokenizes the rendered prompts is compared too, and returned for :func:`compare`.
    ``adapter``: a llama.cpp LoRA GGUF applied over ``path`` (Ollama's ``ADAPTER``)."""
    from llama_cpp import Llama

    context = max(len(ids) for ids in run.ids) + max_new_tokens + 64
    llm = Llama(model_path=str(path), n_ctx=context, logits_all=True, n_threads=os.cpu_count(),
                chat_format="chat_template.default", seed=0, verbose=False,
                lora_path=str(adapter) if adapter else None)  # fmt: skip
    try:
        _same_template(llm, tokenizer, path)
        _same_stops(llm, tokenizer, path)
        differences = _token_differences(llm, tokenizer, run.texts)
        answers = [_greedy(llm, p, max_new_tokens) for p in run.prompts[: len(run.answers)]]
        nll = [llama_nll(llm, ids, scored) for ids, scored in zip(run.ids, run.scored, strict=True)]
    finally:
        llm.close()
    return Observed(answers, nll, differences)


def llama_nll(llm: Any, ids: list[int], scored: list[int]) -> tuple[float, int]:
    """llama.cpp's summed NLL of the scored tokens of ``ids`` (``llm`` built with
    ``logits_all=True``), from a fresh context."""
    llm.reset()
    llm.eval(ids)
    return nll_from_logits(llm.scores[: len(ids)], ids, scored)


def _greedy(llm: Any, prompt: list[dict[str, str]], max_new_tokens: int) -> str:
    reply = llm.create_chat_completion(messages=prompt, max_tokens=max_new_tokens, temperature=0.0,
                                       top_k=1, top_p=1.0, min_p=0.0, repeat_penalty=1.0, seed=0)  # fmt: skip
    return (reply["choices"][0]["message"]["content"] or "").strip()


def _same_template(llm: Any, tokenizer: Any, path: Path) -> None:
    written = llm.metadata.get(_TEMPLATE_KEY)
    if written != tokenizer.chat_template:
        state = "has none" if written is None else "holds another one"
        raise ExportMismatch(f"{path.name}: the chat template differs: the file's "
                             f"{_TEMPLATE_KEY} {state}, not the run's")  # fmt: skip


def _same_stops(llm: Any, tokenizer: Any, path: Path) -> None:
    import llama_cpp

    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    for token in end_of_turn_tokens(tokenizer):
        if not llama_cpp.llama_vocab_is_eog(vocab, tokenizer.convert_tokens_to_ids(token)):
            raise ExportMismatch(f"{path.name}: the stop token differs: {token} ends the run's "
                                 "answers but does not end generation in llama.cpp")  # fmt: skip


def _token_differences(llm: Any, tokenizer: Any, texts: list[str]) -> dict[int, str]:
    """Prompt index → where llama.cpp's tokens first differ from the run's, shown as
    the text around it and both splits."""
    out = {}
    for index, text in enumerate(texts):
        ours = tokenizer(text, add_special_tokens=False)["input_ids"]
        theirs = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
        if ours != theirs:
            at = next((i for i, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
                      min(len(ours), len(theirs)))  # fmt: skip
            context = tokenizer.decode(ours[max(0, at - 2) : at + 2])
            out[index] = (f"{context!r}: run {tokenizer.convert_ids_to_tokens(ours[at : at + 2])}, "
                          f"llama.cpp {tokenizer.convert_ids_to_tokens(theirs[at : at + 1])}")  # fmt: skip
    return out
