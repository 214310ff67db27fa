"""Build the train and eval datasets for a recipe (the data stage's output)."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import DataError

from .formats import (
    AXOLOTL_FIELDS,
    CONVERTERS,
    Example,
    check_group_column,
    convert_rows,
    template_mapping,
)
from .lengths import length_stats
from .reading import read_rows

if TYPE_CHECKING:
    from datasets import Dataset

    from ft_plugin.config import Recipe
    from ft_plugin.config.schema import DatasetSection

Chunker = Callable[[str, int], list[str]]


@dataclass
class TrainingData:
    """What the train stage consumes: TRL-ready datasets plus what was dropped."""

    train: Dataset
    eval: Dataset | None
    dropped: Counter[str] = field(default_factory=Counter)
    lengths: dict[str, Any] | None = None  # token-length statistics of the chat rows (lengths.py)


def _examples_for(
    spec: DatasetSection,
    index: int,
    seed: int,
    chunker: Chunker | None = None,
    group_by: str | None = None,
) -> tuple[list[Example], Counter[str]]:
    rows = read_rows(
        spec.path,
        split=spec.split,
        name=spec.name,
        data_files=spec.data_files,
        revision=spec.revision,
        encoding=spec.encoding,
    )
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
    examples = converted.examples
    if chunker is not None and spec.type == "completion":
        examples = [
            {"text": piece} for e in examples for piece in chunker(e["text"], spec.chunk_overlap)
        ]
    rng = random.Random(seed + index)
    if spec.max_rows is not None:
        rng.shuffle(examples)
        examples = examples[: spec.max_rows]
    return examples, converted.dropped


def _check_mapped_columns(spec: DatasetSection, rows: list[dict[str, Any]], index: int) -> None:
    """A `field_*` mapping naming a column that no row has is a typo: say so, don't drop everything."""
    columns = set().union(*(row.keys() for row in rows[:1000])) if rows else set()
    for key in (*AXOLOTL_FIELDS, "field_messages"):
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


def build_examples(
    specs: list[DatasetSection],
    seed: int,
    chunker: Chunker | None = None,
    group_by: str | None = None,
) -> tuple[list[Example], Counter[str]]:
    """Read, convert and mix datasets (shuffled, seeded); ``group_by`` keeps a column's value
    on every example (evaluation breakdowns; the order, hence the split, is unchanged)."""
    rng = random.Random(seed)
    mixed: list[Example] = []
    dropped: Counter[str] = Counter()
    kinds = set()
    for index, spec in enumerate(specs):
        examples, reasons = _examples_for(spec, index, seed, chunker, group_by)
        dropped.update(reasons)
        kinds.add(_kind(examples[0]))
        mixed += _weighted(examples, spec.weight, rng) if len(specs) > 1 else examples
    if len(kinds) > 1:
        raise DataError(
            "datasets: cannot mix raw-text (completion) and chat/instruction datasets in one run"
        )
    rng.shuffle(mixed)
    return mixed, dropped


def with_replay(
    examples: list[Example], replay: Any, seed: int, chunker: Chunker | None
) -> list[Example]:
    """Training rows plus ``ratio × len(examples)`` rows drawn from the replay datasets.

    The replayed rows are drawn once (seeded) and seen in every epoch, shuffled in with
    the new task's rows; they never enter the eval split.
    """
    pool, _ = build_examples(replay.datasets, seed + 1, chunker)
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


def token_chunker(tokenizer: Any, sequence_len: int) -> Chunker:
    """Cut raw text into `sequence_len`-token windows (room left for the EOS token)."""
    from .chunking import chunk_text

    window = max(8, sequence_len - 1)
    return lambda text, overlap: chunk_text(
        text, tokenizer, window=window, overlap=min(overlap, window - 1)
    )


OVERLONG = "longer_than_sequence_len"


def drop_overlong(
    examples: list[Example], tokenizer: Any, sequence_len: int
) -> tuple[list[Example], int, list[int]]:
    """Drop prompt/completion examples longer than ``sequence_len`` tokens once rendered.

    TRL truncates a row at ``max_length`` from the end, so an over-long example would
    train on a cut-off answer (no end-of-turn token) or, when the prompt alone fills the
    window, on nothing at all. Dropping them is Axolotl's default too. Raw-text rows are
    already cut into windows by the chunker and are kept.
    """
    from .preview import render_example

    kept, lengths = [], []
    for example in examples:
        if "text" in example:
            kept.append(example)
            continue
        lengths.append(render_example(tokenizer, example, sequence_len).full_length)
        if lengths[-1] <= sequence_len:
            kept.append(example)
    return kept, len(examples) - len(kept), lengths


def build_training_data(
    recipe: Recipe, tokenizer: Any | None = None, group_by: str | None = None
) -> TrainingData:
    """Train/eval datasets for ``recipe``: explicit `test_datasets`, or a seeded `val_set_size` split.

    With a ``tokenizer``, long raw text is chunked and chat examples longer than
    ``sequence_len`` are dropped (counted in ``dropped["longer_than_sequence_len"]``).

    Example:
        >>> from ft_plugin.config import load_recipe
        >>> data = build_training_data(load_recipe("medical-lora").recipe)
        >>> sorted(data.train.column_names)
        ['completion', 'prompt']
    """
    from datasets import Dataset

    seed = recipe.dataset_shuffle_seed if recipe.dataset_shuffle_seed is not None else recipe.seed
    chunker = token_chunker(tokenizer, recipe.sequence_len) if tokenizer is not None else None
    examples, dropped = build_examples(recipe.datasets, seed, chunker, group_by)
    held_out: list[Example] = []
    if recipe.test_datasets:
        held_out, more = build_examples(recipe.test_datasets, seed, chunker, group_by)
        dropped.update(more)
    elif recipe.val_set_size:
        size = recipe.val_set_size
        count = int(size) if size >= 1 else max(1, round(len(examples) * size))
        if count >= len(examples):
            raise DataError(
                f"val_set_size: {size} leaves no training rows (only {len(examples)} rows)"
            )
        held_out, examples = examples[:count], examples[count:]
    if recipe.replay:
        examples = with_replay(examples, recipe.replay, seed, chunker)
    if tokenizer is not None:
        examples, dropped[OVERLONG], lengths = drop_overlong(
            examples, tokenizer, recipe.sequence_len
        )
        held_out, more, held_out_lengths = drop_overlong(held_out, tokenizer, recipe.sequence_len)
        dropped[OVERLONG] += more
        stats = length_stats(lengths + held_out_lengths, recipe.sequence_len)
        if not examples:
            raise DataError(
                f"sequence_len: {recipe.sequence_len} is shorter than every training example; "
                "raise it"
            )
    return TrainingData(
        Dataset.from_list(examples), Dataset.from_list(held_out) if held_out else None, dropped,
        stats if tokenizer is not None else None,
    )  # fmt: skip
