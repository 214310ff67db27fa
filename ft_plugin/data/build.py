"""Build the train and eval datasets for a recipe (the data stage's output)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import DataError

from .examples import (
    DUPLICATE,
    OVERLONG,
    SHORT,
    Chunker,
    Mixing,
    TrainingData,
    build_examples,
    chat_rendering,
    drop_by_length,
    drop_overlong,
    held_out_split,
    prompt_style_note,
    shuffle_seed,
    token_chunker,
    tokenized_alike,
    with_replay,
    with_template_variables,
)
from .formats import Example
from .lengths import length_stats

if TYPE_CHECKING:
    from ft_plugin.config import Recipe

__all__ = ["OVERLONG", "SHORT", "Chunker", "TrainingData", "build_examples",
           "build_training_data", "drop_overlong", "is_streaming", "token_chunker",
           "with_replay"]  # fmt: skip


def is_streaming(recipe: Recipe) -> bool:
    """`streaming: true`, or `pretraining_dataset` with `streaming` left empty (Axolotl)."""
    if recipe.streaming is not None:
        return recipe.streaming
    return bool(recipe.pretraining_dataset)


def build_training_data(
    recipe: Recipe, tokenizer: Any | None = None, group_by: str | None = None
) -> TrainingData:
    """Train/eval datasets for ``recipe``: explicit `test_datasets`, or a seeded `val_set_size` split.

    With a ``tokenizer``, long raw text is chunked, ``chat_template`` rows are tokenized
    with their loss mask, and chat examples longer than ``sequence_len`` are dropped
    (counted in ``dropped["longer_than_sequence_len"]``). Under `streaming` the training
    rows are an ``IterableDataset``; with `dataset_prepared_path` the result is saved and
    read back by the next run of the same recipe (:mod:`.prepared`).

    Example:
        >>> from ft_plugin.config import load_recipe
        >>> data = build_training_data(load_recipe("medical-lora").recipe)
        >>> sorted(data.train.column_names)
        ['completion', 'prompt']
    """
    if recipe.rl:  # preference pairs (or KTO's judged answers), rendered as TRL reads them
        from .preferences import build_preference_data

        return build_preference_data(recipe, tokenizer)
    if is_streaming(recipe):
        from .streaming import streamed_training_data

        return streamed_training_data(recipe, tokenizer)
    if not recipe.dataset_prepared_path:
        return _prepare(recipe, tokenizer, group_by)
    from .prepared import PreparedStore

    store = PreparedStore.for_recipe(recipe, tokenizer, group_by)
    saved = store.load()
    if saved is not None:
        return saved
    data = _prepare(recipe, tokenizer, group_by)
    data.notes.append(store.save(data))
    return data


def _prepare(recipe: Recipe, tokenizer: Any | None, group_by: str | None) -> TrainingData:
    from datasets import Dataset

    seed = shuffle_seed(recipe)
    chunker = token_chunker(tokenizer, recipe.sequence_len) if tokenizer is not None else None
    chat = chat_rendering(recipe, tokenizer)
    mixing = Mixing.of(recipe)
    examples, dropped = build_examples(recipe.datasets, seed, chunker, group_by, mixing=mixing,
                                       chat=chat)  # fmt: skip
    held_out: list[Example] = []
    if recipe.test_datasets:
        held_out, more = build_examples(recipe.test_datasets, seed, chunker, group_by,
                                        mixing=mixing, chat=chat)  # fmt: skip
        dropped.update(more)
    elif recipe.val_set_size:
        held_out, examples = held_out_split(examples, recipe.val_set_size, mixing.shuffle)
    if recipe.replay:
        examples = with_replay(examples, recipe.replay, seed, chunker, chat)
    variables = recipe.chat_template_kwargs
    examples, held_out = (with_template_variables(examples, variables),
                          with_template_variables(held_out, variables))  # fmt: skip
    notes = [note] if (note := prompt_style_note(recipe)) else []
    if mixing.dedup:
        count = dropped.get(DUPLICATE, 0)
        notes.append(
            f"dataset_exact_deduplication: dropped {count} duplicate row{'s' * (count != 1)}"
        )
    notes += chat.notes if chat is not None else []
    stats = None
    if tokenizer is not None:
        examples, held_out, stats = _within_lengths(recipe, tokenizer, examples, held_out,
                                                    dropped, notes)  # fmt: skip
    return TrainingData(
        Dataset.from_list(examples), Dataset.from_list(held_out) if held_out else None, dropped,
        stats, notes,
    )  # fmt: skip


def _within_lengths(
    recipe: Recipe, tokenizer: Any, examples: list[Example], held_out: list[Example],
    dropped: Counter[str], notes: list[str],
) -> tuple[list[Example], list[Example], dict[str, Any]]:  # fmt: skip
    """Training and held-out rows tokenized alike, the over-long ones and (`min_sample_len`)
    the short ones dropped and counted in ``dropped``, and their length statistics."""
    examples, held_out = tokenized_alike(examples, tokenizer), tokenized_alike(held_out, tokenizer)
    least = recipe.min_sample_len
    examples, counts, lengths = drop_by_length(examples, tokenizer, recipe.sequence_len, least)
    held_out, more, held_out_lengths = drop_by_length(held_out, tokenizer, recipe.sequence_len,
                                                      least)  # fmt: skip
    counts.update(more)
    dropped.update(counts)
    if least:
        short = counts[SHORT]
        notes.append(f"min_sample_len: dropped {short} row{'s' * (short != 1)} shorter than "
                     f"{least} tokens")  # fmt: skip
    if not examples and counts[SHORT] and not counts[OVERLONG]:
        raise DataError(f"min_sample_len: {least} is longer than every training example; lower it")
    if not examples:
        raise DataError(
            f"sequence_len: {recipe.sequence_len} is shorter than every training example; raise it"
        )
    return examples, held_out, length_stats(lengths + held_out_lengths, recipe.sequence_len)
