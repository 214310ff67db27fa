"""`ft-plugin templates preview`: the exact text a model trains on, loss part marked.

Tokenization follows TRL's SFTTrainer for conversational prompt/completion rows: the
prompt is rendered with the generation prompt, the full conversation without, and
the tokens past their common prefix carry loss; rows are cut at ``sequence_len``. A
test checks this against the masks SFTTrainer itself builds.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .formats import TEMPLATE_VARIABLES, Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

LOSS_OPEN, LOSS_CLOSE = "«", "»"


@dataclass
class RenderedExample:
    """One training example as token ids with its loss mask."""

    input_ids: list[int]
    loss_mask: list[int]  # 1 where the token carries loss
    full_length: int  # before truncation

    @property
    def truncated(self) -> bool:
        return self.full_length > len(self.input_ids)


def _ids(
    tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, Any]], **kwargs: Any
) -> list[int]:
    out = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True, **kwargs)
    return list(out["input_ids"])


def render_example(
    tokenizer: PreTrainedTokenizerBase,
    example: Example,
    sequence_len: int,
    train_on_inputs: bool = False,
) -> RenderedExample:
    """Token ids and loss mask of ``example`` exactly as training sees them (with the
    chat template variables the example carries, as TRL passes them)."""
    if "input_ids" in example:  # tokenized by the data stage (chat_template rows, data/chat.py)
        ids = list(example["input_ids"])
        mask = [1] * len(ids) if train_on_inputs else list(example["completion_mask"])
    elif "text" in example:
        ids = list(tokenizer(example["text"])["input_ids"]) + [tokenizer.eos_token_id]
        mask = [1] * len(ids)
    else:
        variables = example.get(TEMPLATE_VARIABLES) or {}
        prompt = _ids(tokenizer, example["prompt"], add_generation_prompt=True, **variables)
        ids = _ids(tokenizer, example["prompt"] + example["completion"], **variables)
        common = next(
            (i for i, (a, b) in enumerate(zip(prompt, ids, strict=False)) if a != b),
            min(len(prompt), len(ids)),
        )
        mask = [1] * len(ids) if train_on_inputs else [0] * common + [1] * (len(ids) - common)
    return RenderedExample(ids[:sequence_len], mask[:sequence_len], len(ids))


def marked_text(tokenizer: PreTrainedTokenizerBase, rendered: RenderedExample) -> str:
    """The decoded example with each loss-carrying span wrapped in « »."""
    parts: list[str] = []
    start = 0
    ids, mask = rendered.input_ids, rendered.loss_mask
    while start < len(ids):
        end = start
        while end < len(ids) and mask[end] == mask[start]:
            end += 1
        text = tokenizer.decode(ids[start:end], skip_special_tokens=False)
        parts.append(f"{LOSS_OPEN}{text}{LOSS_CLOSE}" if mask[start] else text)
        start = end
    return "".join(parts)


def preview_lines(
    tokenizer: PreTrainedTokenizerBase,
    examples: list[Example],
    sequence_len: int,
    train_on_inputs: bool = False,
) -> tuple[list[str], list[str]]:
    """Printable preview blocks and truncation warnings for ``examples``."""
    blocks: list[str] = []
    warnings: list[str] = []
    for number, example in enumerate(examples, start=1):
        rendered = render_example(tokenizer, example, sequence_len, train_on_inputs)
        trained = sum(rendered.loss_mask)
        header = f"── row {number}: {len(rendered.input_ids)} tokens, {trained} carry loss (between {LOSS_OPEN} {LOSS_CLOSE}) ──"
        blocks.append(f"{header}\n{marked_text(tokenizer, rendered)}")
        if rendered.truncated:
            what = "raw text is cut into windows" if "text" in example else "training drops the row"
            warnings.append(
                f"warning: row {number} has {rendered.full_length} tokens, more than sequence_len "
                f"{sequence_len} (shown cut there): {what}; raise sequence_len to keep it whole"
            )
    return blocks, warnings


def template_preview(template: Any, data: str | None, tokenizer: PreTrainedTokenizerBase, *,
                     rows: int, sequence_len: int, fields: dict[str, str] | None = None,
                     encoding: str | None = None) -> tuple[str, list[str], list[str]]:  # fmt: skip
    """(source, blocks, warnings): the first ``rows`` rows of ``data`` (default: the
    template's sample) rendered through ``template`` exactly as training renders them."""
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.errors import DataError

    from .columns import check_columns
    from .formats import template_examples
    from .reading import builtin_sample_path, read_rows

    source = data or f"builtin:{template.name}"
    if source.startswith("builtin:"):
        builtin_sample_path(source.removeprefix("builtin:"))  # a clear error when absent
    head = read_rows(source, encoding=encoding)[: max(rows * 4, rows)]
    check_columns(template, source, head, fields or {})
    dropped: Counter[str] = Counter()
    spec = DatasetSection(path=source, type=template.name)
    examples = template_examples(head, spec, dropped, mapping=fields)
    if not examples:
        raise DataError(f"{source}: no row fits template {template.name} ({dict(dropped)})")
    blocks, warnings = preview_lines(tokenizer, examples[:rows], sequence_len)
    return source, blocks, warnings


@dataclass
class TemplatePreview:
    """What `ft-plugin templates preview` shows: rendered blocks and warnings about them."""

    template: str  # the template's name
    source: str  # the rows rendered (a file, or builtin:NAME)
    blocks: list[str]
    warnings: list[str]


def preview_template(
    reference: str,
    data: str | None,
    tokenizer: Any,
    *,
    rows: int,
    sequence_len: int,
    field_pairs: list[str] | None = None,
    encoding: str | None = None,
) -> TemplatePreview:
    """Render ``rows`` rows of ``data`` through template ``reference`` with ``tokenizer``
    (the base model's); ``field_pairs`` are ``--field NAME=COLUMN`` arguments.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        preview_template("medical", None, base_tokenizer("embedded:smollm2-135m-instruct"),
                         rows=1, sequence_len=512).blocks[0]  # '<|im_start|>system …'
    """
    from .columns import parse_field_arguments
    from .templates import load_template

    template = load_template(reference)
    fields = parse_field_arguments(field_pairs, template)
    source, blocks, warnings = template_preview(
        template,
        data,
        tokenizer,
        rows=rows,
        sequence_len=sequence_len,
        fields=fields,
        encoding=encoding,
    )
    return TemplatePreview(template.name, source, blocks, warnings)
