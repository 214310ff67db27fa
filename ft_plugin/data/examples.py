"""Datasets → training examples: read, convert, window, tokenize chat rows, de-duplicate
and mix (the pieces :mod:`.build` and :mod:`.streaming` put together)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ft_plugin.config.schema.datasets import RAW_TEXT_TYPES
from ft_plugin.errors import DataError

from .formats import (
    AXOLOTL_FIELDS,
    CONVERTERS,
    TEMPLATE_VARIABLES,
    Example,
    check_group_column,
    convert_rows,
    template_mapping,
)
from .reading import rows_of

if TYPE_CHECKING:
    from datasets import Dataset, IterableDataset

    from ft_plugin.config import Recipe
    from ft_plugin.config.schema import DatasetSection

    from .chat import ChatRendering

Chunker = Callable[[str, int], list[str]]
DUPLICATE = "duplicate"  # dropped-rows reason of dataset_exact_deduplication
PRETRAIN_MAX_STRIDE = 256  # Axolotl's pretrain windows overlap by min(256, (len - 1) // 2)


@dataclass
class TrainingData:
    """What the train stage consumes: TRL-ready datasets plus what was dropped.

    ``train`` is an ``IterableDataset`` under `streaming` (its length is unknown: rows are
    read as training goes). ``notes`` are one line each for the run to print (rows
    de-duplicated, prepared rows saved or read back, streaming).
    """

    train: Dataset | IterableDataset
    eval: Dataset | None
    dropped: Counter[str] = field(default_factory=Counter)
    lengths: dict[str, Any] | None = None  # token-length statistics of the chat rows (lengths.py)
    notes: list[str] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        """True when ``train`` is read as training goes (no length)."""
        return not hasattr(self.train, "__len__")


@dataclass(frozen=True)
class Mixing:
    """How datasets are merged: Axolotl's `shuffle_merged_datasets`,
    `shuffle_before_merging_datasets` and `dataset_exact_deduplication`."""

    shuffle: bool = True
    shuffle_each: bool = False
    dedup: bool = False

    @classmethod
    def of(cls, recipe: Recipe) -> Mixing:
        return cls(recipe.shuffle_merged_datasets, recipe.shuffle_before_merging_datasets,
                   recipe.dataset_exact_deduplication)  # fmt: skip


def shuffle_seed(recipe: Recipe) -> int:
    """The seed of every data shuffle: `dataset_shuffle_seed`, else `seed` (Axolotl's rule)."""
    return recipe.dataset_shuffle_seed if recipe.dataset_shuffle_seed is not None else recipe.seed


def held_out_split(rows: list[Any], size: float, shuffled: bool) -> tuple[list[Any], list[Any]]:
    """(held out, train): `val_set_size` rows (a count, or a fraction below 1), the first
    ones of shuffled rows, the last ones of rows kept in order (Axolotl's split of
    unshuffled data).

    Example:
        >>> held_out_split(list(range(10)), 0.2, shuffled=True)
        ([0, 1], [2, 3, 4, 5, 6, 7, 8, 9])
    """
    count = int(size) if size >= 1 else max(1, round(len(rows) * size))
    if count >= len(rows):
        raise DataError(f"val_set_size: {size} leaves no training rows (only {len(rows)} rows)")
    if shuffled:
        return rows[:count], rows[count:]
    return rows[-count:], rows[:-count]


def default_overlap(spec: DatasetSection, chunker: Any) -> int:
    """`chunk_overlap`, else 0 for `completion` and Axolotl's stride for `pretrain`."""
    if spec.chunk_overlap is not None:
        return spec.chunk_overlap
    window = getattr(chunker, "window", 0)
    return min(PRETRAIN_MAX_STRIDE, window // 2) if spec.type == "pretrain" else 0


def _examples_for(
    spec: DatasetSection,
    index: int,
    seed: int,
    chunker: Chunker | None = None,
    group_by: str | None = None,
    chat: ChatRendering | None = None,
) -> tuple[list[Example], Counter[str]]:
    rows = rows_of(spec)
    _check_mapped_columns(spec, rows, index)
    if spec.type not in CONVERTERS:
        from .columns import check_columns
        from .templates import load_template

        template = load_template(spec.type)
        check_columns(template, spec.path, rows[:100], template_mapping(template, spec),
                      recipe_key=f"datasets.{index}")  # fmt: skip
    if group_by:
        check_group_column(spec.path, rows, group_by)
    converted = convert_rows(rows, spec, group_by=group_by)
    if not converted.examples:
        reasons = (
            ", ".join(f"{k}: {v}" for k, v in converted.dropped.items()) or "the file is empty"
        )
        raise DataError(f"{spec.path}: no usable rows for type {spec.type} ({reasons})")
    examples, dropped = converted.examples, converted.dropped
    if chunker is not None and spec.type in RAW_TEXT_TYPES:
        overlap = default_overlap(spec, chunker)
        examples = [{"text": piece} for e in examples for piece in chunker(e["text"], overlap)]
    rng = random.Random(seed + index)
    if spec.max_rows is not None:
        rng.shuffle(examples)
        examples = examples[: spec.max_rows]
    if chat is not None and spec.type == "chat_template":
        examples, more = chat.tokenize(examples, spec)
        dropped.update(more)
        if not examples:
            raise DataError(f"{spec.path}: no row has a token to train on ({dict(more)})")
    return examples, dropped


def _check_mapped_columns(spec: DatasetSection, rows: list[dict[str, Any]], index: int) -> None:
    """A `field_*` mapping naming a column that no row has is a typo: say so, don't drop everything."""
    columns = set().union(*(row.keys() for row in rows[:1000])) if rows else set()
    for key in (*AXOLOTL_FIELDS, "field_messages", "field", "text_column"):
        column = getattr(spec, key)
        if column is not None and rows and column not in columns:
            raise DataError(
                f"{spec.path}: column {column!r} (datasets.{index}.{key}) not found; "
                f"columns: {', '.join(sorted(columns))}"
            )


def _weighted(examples: list[Example], weight: float, rng: random.Random) -> list[Example]:
    """Weight 2 repeats every row twice, 0.5 keeps a random half: rows drawn ∝ weight."""
    whole, part = divmod(weight, 1)
    picked = examples * int(whole)
    picked += rng.sample(examples, round(part * len(examples)))
    return picked


def _kind(example: Example) -> str:
    return "text" if "text" in example else "conversational"


def row_key(example: Example) -> str:
    """What makes two rows "exactly the same" for `dataset_exact_deduplication`."""
    return json.dumps(example, sort_keys=True, ensure_ascii=False, default=str)


def _first_seen(examples: list[Example], seen: set[str]) -> list[Example]:
    kept = []
    for example in examples:
        key = row_key(example)
        if key not in seen:
            seen.add(key)
            kept.append(example)
    return kept


def build_examples(
    specs: list[DatasetSection],
    seed: int,
    chunker: Chunker | None = None,
    group_by: str | None = None,
    *,
    mixing: Mixing = Mixing(),
    chat: ChatRendering | None = None,
) -> tuple[list[Example], Counter[str]]:
    """Read, convert and mix datasets (shuffled, seeded, unless ``mixing`` says otherwise);
    ``group_by`` keeps a column's value on every example (evaluation breakdowns; the order,
    hence the split, is unchanged). Exact duplicates are dropped before weighting, so
    ``weight: 2`` still repeats each row."""
    rng = random.Random(seed)
    mixed: list[Example] = []
    dropped: Counter[str] = Counter()
    kinds = set()
    seen: set[str] = set()
    for index, spec in enumerate(specs):
        examples, reasons = _examples_for(spec, index, seed, chunker, group_by, chat)
        dropped.update(reasons)
        if mixing.dedup:
            unique = _first_seen(examples, seen)
            if len(unique) < len(examples):
                dropped[DUPLICATE] += len(examples) - len(unique)
            examples = unique
        if not examples:
            continue
        kinds.add(_kind(examples[0]))
        if mixing.shuffle_each:
            random.Random(seed + 1000 + index).shuffle(examples)
        mixed += _weighted(examples, spec.weight, rng) if len(specs) > 1 else examples
    if len(kinds) > 1:
        raise DataError(
            "datasets: cannot mix raw-text (completion) and chat/instruction datasets in one run"
        )
    if mixing.shuffle:
        rng.shuffle(mixed)
    return mixed, dropped


def with_replay(
    examples: list[Example],
    replay: Any,
    seed: int,
    chunker: Chunker | None,
    chat: ChatRendering | None = None,
) -> list[Example]:
    """Training rows plus ``ratio × len(examples)`` rows drawn from the replay datasets.

    The replayed rows are drawn once (seeded) and seen in every epoch, shuffled in with
    the new task's rows; they never enter the eval split.
    """
    pool, _ = build_examples(replay.datasets, seed + 1, chunker, chat=chat)
    if examples and _kind(pool[0]) != _kind(examples[0]):
        raise DataError("replay.datasets: raw text and chat/instruction rows cannot be mixed")
    count = max(1, round(replay.ratio * len(examples)))
    rng = random.Random(seed + 2)
    drawn = (
        rng.sample(pool, count) if count <= len(pool) else [rng.choice(pool) for _ in range(count)]
    )
    mixed = examples + drawn
    rng.shuffle(mixed)
    return mixed


@dataclass(frozen=True)
class TextChunker:
    """Cut raw text into `sequence_len`-token windows (room left for the EOS token)."""

    tokenizer: Any
    window: int

    def __call__(self, text: str, overlap: int) -> list[str]:
        from .chunking import chunk_text

        return chunk_text(text, self.tokenizer, window=self.window,
                          overlap=min(overlap, self.window - 1))  # fmt: skip


def token_chunker(tokenizer: Any, sequence_len: int) -> TextChunker:
    """Cut raw text into `sequence_len`-token windows (room left for the EOS token)."""
    return TextChunker(tokenizer, max(8, sequence_len - 1))


OVERLONG = "longer_than_sequence_len"
SHORT = "shorter_than_min_sample_len"


def drop_overlong(
    examples: list[Example], tokenizer: Any, sequence_len: int
) -> tuple[list[Example], int, list[int]]:
    """Drop prompt/completion examples longer than ``sequence_len`` tokens once rendered.

    TRL truncates a row at ``max_length`` from the end, so an over-long example would
    train on a cut-off answer (no end-of-turn token) or, when the prompt alone fills the
    window, on nothing at all. Dropping them is Axolotl's default too. Raw-text rows are
    already cut into windows by the chunker and are kept.
    """
    kept, dropped, lengths = drop_by_length(examples, tokenizer, sequence_len)
    return kept, dropped[OVERLONG], lengths


def drop_by_length(
    examples: list[Example], tokenizer: Any, sequence_len: int, min_len: int | None = None
) -> tuple[list[Example], Counter[str], list[int]]:
    """Drop examples longer than ``sequence_len`` (see :func:`drop_overlong`) and, with
    `min_sample_len` (``min_len``), shorter than ``min_len`` tokens: Axolotl counts the
    tokenized row's input_ids, EOS included, as training sees them.

    Returns the kept examples, the counts by reason (``OVERLONG``, ``SHORT``) and the
    lengths of the chat examples (for :func:`~.lengths.length_stats`).
    """
    from .preview import render_example

    kept, lengths, dropped = [], [], Counter({OVERLONG: 0, **({SHORT: 0} if min_len else {})})
    for example in examples:
        raw = "text" in example  # raw-text windows: never over-long; measured for min_len only
        length = (
            render_example(tokenizer, example, sequence_len).full_length
            if min_len or not raw
            else 0
        )
        if not raw:
            lengths.append(length)
        if min_len and length < min_len:
            dropped[SHORT] += 1
        elif length > sequence_len and not raw:
            dropped[OVERLONG] += 1
        else:
            kept.append(example)
    return kept, dropped, lengths


STYLE_WORDING = {  # Axolotl's prompters.AlpacaPrompter turn formats, as a reminder
    "instruct": "### Instruction: / ### Response:",
    "chat": "USER: / ASSISTANT:",
    "chatml": "<|im_start|>user / <|im_start|>assistant",
    "phi": "<|user|> / <|assistant|>",
}


def prompt_style_note(recipe: Recipe) -> str | None:
    """One line for the datasets typed `alpaca:STYLE` (Axolotl's prompt styles): the
    style's wording is not used, the model's chat template renders the rows."""
    entries = [(f"{group}.{index}", spec.prompt_style)
               for group, specs in (("datasets", recipe.datasets),
                                    ("test_datasets", recipe.test_datasets),
                                    ("replay.datasets", recipe.replay and recipe.replay.datasets))
               for index, spec in enumerate(specs or []) if spec.prompt_style]  # fmt: skip
    if not entries:
        return None
    named = ", ".join(f"{where}.type: alpaca:{style}" for where, style in entries)
    wording = "; ".join(dict.fromkeys(f"{style}: {STYLE_WORDING[style]}" for _, style in entries))
    return (f"{named}: Axolotl's prompt wording ({wording}) is not applied; the rows are "
            "alpaca rows rendered with the model's chat template")  # fmt: skip


def with_template_variables(
    examples: list[Example], variables: dict[str, Any] | None
) -> list[Example]:
    """Chat examples carrying the recipe's `chat_template_kwargs` as TRL's per-row
    ``chat_template_kwargs`` (TRL's tokenization and :func:`~.preview.render_example` pass
    them to the chat template); raw-text examples unchanged.

    Example:
        >>> with_template_variables([{"prompt": [], "completion": []}, {"text": "t"}],
        ...                         {"enable_thinking": False})
        [{'prompt': [], 'completion': [], 'chat_template_kwargs': {'enable_thinking': False}}, {'text': 't'}]
    """
    if not variables:
        return examples
    return [{**e, TEMPLATE_VARIABLES: dict(variables)} if "prompt" in e else e for e in examples]


def tokenized_like_trl(example: Example, tokenizer: Any) -> Example:
    """A prompt/completion example with the ``input_ids`` and ``completion_mask`` TRL's
    SFTTrainer would give it (``preview.render_example`` is checked against TRL)."""
    from .preview import render_example

    rendered = render_example(tokenizer, example, sequence_len=1 << 30)
    return {**example, "input_ids": rendered.input_ids, "completion_mask": rendered.loss_mask}


def tokenized_alike(examples: list[Example], tokenizer: Any) -> list[Example]:
    """Once some rows are tokenized (``chat_template`` rows), tokenize the other chat rows
    of the same dataset as TRL would (one dataset has one set of columns)."""
    if not any("input_ids" in e for e in examples):
        return examples
    return [e if "input_ids" in e else tokenized_like_trl(e, tokenizer) for e in examples]


def chat_rendering(recipe: Recipe, tokenizer: Any) -> ChatRendering | None:
    """How ``chat_template`` rows are rendered for this recipe and tokenizer."""
    if tokenizer is None:
        return None
    from .chat import ChatRendering

    return ChatRendering(tokenizer, recipe.chat_template, recipe.chat_template_jinja,
                         getattr(recipe, "eot_tokens", None),
                         getattr(recipe, "chat_template_kwargs", None))  # fmt: skip
