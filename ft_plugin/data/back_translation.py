"""Data augmentation by back-translation: a field translated to a pivot language and back.

Like every augmentation (``augment.py``), it returns *new* rows only, each marked
``"_augmented": "back_translation"``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from .augment import AUGMENTED, Row

__all__ = ["HFTranslator", "Translator", "back_translate"]


@runtime_checkable
class Translator(Protocol):
    """Anything that translates a batch of texts from ``source`` to ``target`` language."""

    def __call__(self, texts: list[str], source: str, target: str) -> list[str]: ...


def _translate_all(
    translator: Translator, texts: list[str], source: str, target: str, batch_size: int
) -> list[str]:
    out: list[str] = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        result = list(translator(batch, source, target))
        if len(result) != len(batch):
            raise ValueError(
                f"translator returned {len(result)} texts for a batch of {len(batch)} "
                f"({source} → {target})"
            )
        out += [str(text) for text in result]
    return out


def back_translate(
    rows: list[Row],
    translator: Translator,
    *,
    fields: list[str],
    pivot: str = "fr",
    source: str = "en",
    batch_size: int = 16,
) -> list[Row]:
    """Paraphrases by translating ``fields`` to ``pivot`` and back to ``source``.

    Distinct non-empty texts are translated once each, in batches of ``batch_size``
    (all forward batches, then all backward ones). A row's variant is kept only when
    at least one field came back different (ignoring whitespace differences); fields that
    came back unchanged keep the original text.

    Example:
        >>> class Upper:  # a stand-in for a real translation model
        ...     def __call__(self, texts, source, target):
        ...         return [t.upper() if target == "fr" else t.replace("HI", "Hello") for t in texts]
        >>> back_translate([{"text": "hi there"}], Upper(), fields=["text"])
        [{'text': 'Hello THERE', '_augmented': 'back_translation'}]
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, not {batch_size}")
    unique: dict[str, int] = {}
    for row in rows:
        for key in fields:
            value = row.get(key)
            if isinstance(value, str) and value.strip():
                unique.setdefault(value, len(unique))
    if not unique:
        return []
    texts = list(unique)
    there = _translate_all(translator, texts, source, pivot, batch_size)
    back = dict(
        zip(texts, _translate_all(translator, there, pivot, source, batch_size), strict=True)
    )

    out: list[Row] = []
    for row in rows:
        variant = dict(row)
        changed = False
        for key in fields:
            value = row.get(key)
            if not (isinstance(value, str) and value.strip()):
                continue
            new = back[value]
            if new.strip() and " ".join(new.split()) != " ".join(value.split()):
                variant[key] = new
                changed = True
        if changed:
            variant[AUGMENTED] = "back_translation"
            out.append(variant)
    return out


class HFTranslator:
    """A :class:`Translator` over two Hugging Face seq2seq translation models.

    ``model_id_forward`` translates ``source`` → pivot (e.g. ``Helsinki-NLP/opus-mt-en-fr``)
    and ``model_id_backward`` pivot → ``source`` (``Helsinki-NLP/opus-mt-fr-en``): a call
    whose ``target`` is ``source`` uses the backward model, any other call the forward one.
    transformers is imported and the models are loaded on first call only. transformers 5
    removed the ``"translation"`` pipeline task, so this runs tokenizer + ``generate``
    itself. For multilingual models (NLLB, M2M100) give ``lang_codes`` (e.g.
    ``{"en": "eng_Latn", "fr": "fra_Latn"}``): the tokenizer's ``src_lang`` is set and
    generation is forced to start with the target language token.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        translator = HFTranslator("Helsinki-NLP/opus-mt-en-fr", "Helsinki-NLP/opus-mt-fr-en")
        rows = back_translate(rows, translator, fields=["instruction"])
    """

    def __init__(
        self,
        model_id_forward: str,
        model_id_backward: str,
        *,
        source: str = "en",
        device: str | None = None,
        max_new_tokens: int = 512,
        num_beams: int = 1,
        lang_codes: dict[str, str] | None = None,
    ) -> None:
        self.model_id_forward = model_id_forward
        self.model_id_backward = model_id_backward
        self.source = source
        self.device = device
        self.max_new_tokens = max_new_tokens
        self.num_beams = num_beams
        self.lang_codes = dict(lang_codes or {})
        self._loaded: dict[str, tuple[Any, Any]] = {}

    def _load(self, model_id: str) -> tuple[Any, Any]:
        if model_id not in self._loaded:
            from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

            tokenizer = AutoTokenizer.from_pretrained(model_id)
            model = AutoModelForSeq2SeqLM.from_pretrained(model_id)
            if self.device is not None:
                model = model.to(self.device)
            model.eval()
            self._loaded[model_id] = (tokenizer, model)
        return self._loaded[model_id]

    def __call__(self, texts: list[str], source: str, target: str) -> list[str]:
        if not texts:
            return []
        import torch

        model_id = self.model_id_backward if target == self.source else self.model_id_forward
        tokenizer, model = self._load(model_id)
        generate: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
        }
        if self.lang_codes:
            tokenizer.src_lang = self.lang_codes.get(source, source)
            code = self.lang_codes.get(target, target)
            generate["forced_bos_token_id"] = tokenizer.convert_tokens_to_ids(code)
        batch = tokenizer(texts, return_tensors="pt", padding=True, truncation=True)
        batch = batch.to(model.device)
        with torch.inference_mode():
            output = model.generate(**batch, **generate)
        return [text.strip() for text in tokenizer.batch_decode(output, skip_special_tokens=True)]
