"""`streaming: true` / `pretraining_dataset`: training rows read as training goes.

Each dataset becomes a ``datasets.IterableDataset`` whose rows are read from the source
one at a time (:func:`ft_plugin.data.reading.stream_rows`), converted and cut into
`sequence_len` windows exactly as the in-memory path does, so a corpus larger than memory
trains and a small one gives the same rows. Datasets are merged in order, shuffled
within a buffer when `shuffle_merged_datasets` (`shuffle_before_merging_datasets`: each
one first), as in Axolotl. What needs every row at once is refused in one line: held-out
splits, exact de-duplication, `replay` (the schema), domain templates (their cleaning
compares rows) and mixing weights other than 1; `max_rows` takes the first rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ft_plugin.config.schema.datasets import BUILTIN_DATASET_TYPES, RAW_TEXT_TYPES
from ft_plugin.errors import DataError

from .examples import (
    TrainingData,
    build_examples,
    chat_rendering,
    default_overlap,
    drop_by_length,
    prompt_style_note,
    shuffle_seed,
    token_chunker,
    tokenized_alike,
    tokenized_like_trl,
    with_template_variables,
)
from .formats import CONVERTERS
from .reading import stream_rows

if TYPE_CHECKING:
    from datasets import IterableDataset

    from ft_plugin.config import Recipe
    from ft_plugin.config.schema import DatasetSection

    from .chat import ChatRendering
    from .examples import TextChunker

SHUFFLE_BUFFER = 1000  # rows held to shuffle a stream (datasets' default)


def check_streamable(spec: DatasetSection, index: int) -> None:
    """One line for a dataset that needs all its rows at once."""
    if spec.type not in BUILTIN_DATASET_TYPES:
        raise DataError(
            f"datasets.{index}.type: {spec.type}: a domain template cleans and compares whole "
            "datasets, which streamed rows are not; turn streaming off or use type: "
            f"{' / '.join(BUILTIN_DATASET_TYPES)}"
        )
    if spec.weight != 1:
        raise DataError(
            f"datasets.{index}.weight: {spec.weight:g}: weights resample whole datasets; "
            "streamed datasets are read once each, in order (remove weight or streaming)"
        )


@dataclass(frozen=True)
class _Stream:
    """One dataset's rows as training examples, read lazily (the generator of an
    ``IterableDataset``; everything it needs, nothing loaded)."""

    spec: DatasetSection
    sequence_len: int
    chunker: TextChunker | None
    chat: ChatRendering | None
    tokenize_all: bool
    variables: dict[str, Any] | None = None  # `chat_template_kwargs`
    min_len: int | None = None  # `min_sample_len`

    def examples(self) -> Iterator[dict[str, Any]]:
        spec, convert = self.spec, CONVERTERS[self.spec.type]
        rendering = self._rendering()
        count = 0
        for row in stream_rows(spec):
            example = convert(row, spec)
            if isinstance(example, str):  # an unusable row: dropped, as in memory
                continue
            example = with_template_variables([example], self.variables)[0]
            for ready in self._finished(example, rendering):
                yield ready
                count += 1
                if spec.max_rows is not None and count >= spec.max_rows:
                    return

    def _rendering(self) -> tuple[str, Any] | None:
        if self.chat is None or self.spec.type != "chat_template":
            return None
        from .chat import turn_loss

        loss = turn_loss(self.spec, self.chat.tokenizer, self.chat.eot_tokens)
        return self.chat.template_for(self.spec), loss

    def _finished(
        self, example: dict[str, Any], rendering: tuple[str, Any] | None
    ) -> list[dict[str, Any]]:
        """The training rows one converted example makes: windows of raw text, or the
        example (tokenized where the in-memory path tokenizes it), none if over-long (or,
        with `min_sample_len`, short)."""
        if "text" in example:
            if self.chunker is None:
                return [example]
            overlap = default_overlap(self.spec, self.chunker)
            pieces = [{"text": piece} for piece in self.chunker(example["text"], overlap)]
            return self._long_enough(pieces)
        if self.chat is None:
            return [example]
        if rendering is not None:
            tokenized = self.chat.tokenize_one(example, *rendering)
            if isinstance(tokenized, str):
                return []
            example = tokenized
        elif self.tokenize_all:
            example = tokenized_like_trl(example, self.chat.tokenizer)
        return self._long_enough([example])

    def _long_enough(self, examples: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """``examples`` within `sequence_len` (chat rows) and `min_sample_len` tokens."""
        if self.chat is None:
            return examples
        return drop_by_length(examples, self.chat.tokenizer, self.sequence_len, self.min_len)[0]


def _generate(stream: _Stream) -> Iterator[dict[str, Any]]:
    yield from stream.examples()


def _iterable(stream: _Stream) -> IterableDataset:
    from datasets import IterableDataset

    return IterableDataset.from_generator(_generate, gen_kwargs={"stream": stream})


def streamed_training_data(recipe: Recipe, tokenizer: Any | None) -> TrainingData:
    """Training rows as an ``IterableDataset`` (never counted, never loaded whole), and
    `test_datasets` (read whole, as Axolotl does) for evaluation."""
    from datasets import Dataset, concatenate_datasets

    for index, spec in enumerate(recipe.datasets):
        check_streamable(spec, index)
    kinds = {"text" if spec.type in RAW_TEXT_TYPES else "chat" for spec in recipe.datasets}
    if len(kinds) > 1:
        raise DataError(
            "datasets: cannot mix raw-text (completion) and chat/instruction datasets in one run"
        )
    seed = shuffle_seed(recipe)
    chunker = token_chunker(tokenizer, recipe.sequence_len) if tokenizer is not None else None
    chat = chat_rendering(recipe, tokenizer)
    tokenize_all = chat is not None and any(s.type == "chat_template" for s in recipe.datasets)
    parts = [_iterable(_Stream(spec, recipe.sequence_len, chunker, chat, tokenize_all,
                               recipe.chat_template_kwargs, recipe.min_sample_len))
             for spec in recipe.datasets]  # fmt: skip
    if recipe.shuffle_before_merging_datasets:
        parts = [p.shuffle(seed=seed + i, buffer_size=SHUFFLE_BUFFER) for i, p in enumerate(parts)]
    train = parts[0] if len(parts) == 1 else concatenate_datasets(parts)
    if recipe.shuffle_merged_datasets:
        train = train.shuffle(seed=seed, buffer_size=SHUFFLE_BUFFER)
    held_out = None
    if recipe.test_datasets:
        from .examples import Mixing

        rows, _ = build_examples(recipe.test_datasets, seed, chunker, mixing=Mixing.of(recipe),
                                 chat=chat)  # fmt: skip
        rows = with_template_variables(rows, recipe.chat_template_kwargs)
        if tokenizer is not None:
            rows, _, _ = drop_by_length(tokenized_alike(rows, tokenizer), tokenizer,
                                        recipe.sequence_len, recipe.min_sample_len)  # fmt: skip
        held_out = Dataset.from_list(rows) if rows else None
    note = (f"streaming: {len(parts)} dataset{'s' * (len(parts) != 1)} read as training goes "
            f"(shuffled within {SHUFFLE_BUFFER} rows)" if recipe.shuffle_merged_datasets
            else f"streaming: {len(parts)} dataset{'s' * (len(parts) != 1)} read in order")  # fmt: skip
    style = prompt_style_note(recipe)
    return TrainingData(train, held_out, notes=[note, *([style] if style else [])])
