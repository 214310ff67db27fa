"""Row shapes → training examples in TRL's conversational prompt/completion form.

Every chat-style row becomes ``{"prompt": [messages…], "completion": [assistant]}``:
TRL applies the model's chat template and computes the loss on the completion only,
exactly the answer tokens (``train_on_inputs: true`` turns that off). We chose this
over TRL's ``assistant_only_loss``, which refuses chat templates without
``{% generation %}`` markers, such as SmolLM2's ChatML. ``chat_template`` rows keep that
shape (evaluation generates from the prompt) and, given the model's tokenizer, are also
tokenized with a loss mask per turn as Axolotl trains them (:mod:`.chat`). Raw text
(``completion``, ``pretrain``) becomes ``{"text": …}`` with loss on every token.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from ft_plugin.config.schema import DatasetSection
from ft_plugin.errors import DataError

from .chat import chat_turns
from .templates import Template, load_template

Example = dict[str, Any]

# TRL's per-row column of extra chat template variables (SFTTrainer and trl.data_utils read
# it); the recipe's `chat_template_kwargs` travel with each chat example under it.
TEMPLATE_VARIABLES = "chat_template_kwargs"

# With ``group_by`` (evaluation breakdowns), each example carries its row's value of that
# column under this key; training converts without it, so its examples are unchanged.
GROUP = "group"
MISSING_GROUP = "(missing)"
_CARRIED = "__group__"  # the value on a canonical row, through cleaning, until rendering


def group_value(row: dict[str, Any], column: str) -> str:
    """A row's group name: the column's value as text, ``(missing)`` when absent or empty.

    Example:
        >>> group_value({"dept": "心血管科"}, "dept"), group_value({}, "dept")
        ('心血管科', '(missing)')
    """
    value = row.get(column)
    if value is None or (isinstance(value, str) and not value.strip()):
        return MISSING_GROUP
    return str(value).strip() if isinstance(value, str | int | float | bool) else repr(value)


def check_group_column(source: str, rows: list[dict[str, Any]], column: str) -> None:
    """A ``--group-by`` column that no row has is one clear error, not one "(missing)" group."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if rows and column not in columns:
        raise DataError(
            f"{source}: --group-by {column!r}: no such column; the file's columns: "
            f"{', '.join(columns)}"
        )


def _grouped(example: Example | str, value: str | None) -> Example | str:
    if isinstance(example, dict) and value is not None:
        example[GROUP] = value
    return example


@dataclass
class Conversion:
    """Examples made from one dataset, and the rows dropped (reason → count)."""

    examples: list[Example]
    dropped: Counter[str] = field(default_factory=Counter)


def _text(row: dict[str, Any], column: str) -> str | None:
    value = row.get(column)
    if value is None:
        return None
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None


def alpaca_example(row: dict[str, Any], spec: DatasetSection) -> Example | str:
    """instruction (+ input) → user turn, output → assistant turn; a str is a drop reason."""
    instruction = _text(row, spec.field_instruction or "instruction")
    output = _text(row, spec.field_output or "output")
    if instruction is None:
        return "missing_instruction"
    if output is None:
        return "missing_output"
    extra = _text(row, spec.field_input or "input")
    user = f"{instruction}\n\n{extra}" if extra else instruction
    prompt = [{"role": "user", "content": user}]
    system = _text(row, spec.field_system) if spec.field_system else None
    if system:
        prompt.insert(0, {"role": "system", "content": system})
    return {"prompt": prompt, "completion": [{"role": "assistant", "content": output}]}


def chat_example(row: dict[str, Any], spec: DatasetSection) -> Example | str:
    """A messages list → everything before the last assistant turn is the prompt.

    The turns are read as Axolotl reads them (:func:`ft_plugin.data.chat.chat_turns`);
    a ``chat_template`` dataset's rows are then tokenized turn by turn (``ChatRendering``).
    """
    turns = chat_turns(row, spec)
    if isinstance(turns, str):
        return turns
    if turns[-1]["role"] != "assistant" or not turns[-1]["content"].strip():
        return "no_final_assistant_turn"
    if len(turns) < 2:
        return "no_prompt"
    return {"prompt": turns[:-1], "completion": turns[-1:]}


def completion_example(row: dict[str, Any], spec: DatasetSection) -> Example | str:
    """Raw text (``completion`` / ``pretrain``) from `field_text`, `field` or `text_column`."""
    text = _text(row, spec.text_field())
    return {"text": text} if text else "missing_text"


CONVERTERS = {
    "alpaca": alpaca_example,
    "chat_template": chat_example,
    "completion": completion_example,
    "pretrain": completion_example,  # Axolotl's pre-training rows: raw text, cut into windows
}


# Axolotl's field_* keys, each with the column name it overrides by default.
AXOLOTL_FIELDS = {
    "field_instruction": "instruction",
    "field_input": "input",
    "field_output": "output",
    "field_system": "system",
    "field_text": "text",
    "field_label": "label",
}


def template_mapping(template: Template, spec: DatasetSection) -> dict[str, str]:
    """Recipe `field_*` keys → {canonical field: column} for ``template``.

    `field_instruction: Q` maps column Q onto the template field that accepts an
    `instruction` column (`question` in medical-pubmedqa), and so on.
    """
    mapping: dict[str, str] = {}
    for key, default_column in AXOLOTL_FIELDS.items():
        column = getattr(spec, key)
        if column is None:
            continue
        target = next(
            (
                f
                for f, cols in template.fields.items()
                if f == default_column or default_column in cols
            ),
            None,
        )
        if target is not None:
            mapping[target] = column
    return mapping


def _with_system(example: Example | str, system: str | None) -> Example | str:
    if isinstance(example, dict) and system and example["prompt"][0]["role"] != "system":
        example["prompt"].insert(0, {"role": "system", "content": system})
    return example


def template_examples(
    rows: list[dict[str, Any]],
    spec: DatasetSection,
    dropped: Counter[str],
    mapping: dict[str, str] | None = None,
    group_by: str | None = None,
) -> list[Example]:
    """Rows in any shape the template accepts → prompt/completion with its system prompt.

    Field rows are renamed to the template's canonical fields, cleaned as the template
    says (unless the dataset sets `clean: false`) and rendered; chat rows keep their turns.
    With ``group_by``, every example keeps that column's value under ``GROUP``.
    """
    from .cleaning import CleaningOptions, CleaningReport, clean_rows

    template = load_template(spec.type)
    mapping = {**template_mapping(template, spec), **(mapping or {})}
    system = template.system_prompt.strip() if template.system_prompt else None
    messages_column = spec.field_messages or "messages"
    is_chat = [template.accepts_messages and messages_column in row for row in rows]
    groups = [group_value(r, group_by) if group_by else None for r in rows]
    pairs = list(zip(rows, is_chat, groups, strict=True))
    outputs: list[Example | str] = [
        _grouped(_with_system(chat_example(r, spec), system), g) for r, c, g in pairs if c
    ]
    canonical: Any = (
        {**template.canonical(r, mapping), **({_CARRIED: g} if g is not None else {})}
        for r, c, g in pairs
        if not c
    )
    if spec.clean:
        cleaning = template.cleaning
        options = CleaningOptions(
            scrub_pii=cleaning.scrub_pii, min_chars=cleaning.min_chars,
            max_chars=cleaning.max_chars, near_dup_threshold=cleaning.near_dup_threshold,
        )  # fmt: skip
        report = CleaningReport()
        canonical = list(clean_rows(canonical, text_fields=template.text_fields,
                                    required_fields=template.required, options=options, report=report))  # fmt: skip
        dropped.update(report.dropped)
    outputs += [_grouped(template.render(row), row.get(_CARRIED)) for row in canonical]
    dropped.update(o for o in outputs if isinstance(o, str))
    return [o for o in outputs if not isinstance(o, str)]


def convert_rows(
    rows: list[dict[str, Any]], spec: DatasetSection, group_by: str | None = None
) -> Conversion:
    """Convert rows of one dataset; rows that cannot be used are counted, never raised.

    With ``group_by``, every example keeps that column's value under ``GROUP``.
    """
    result = Conversion([])
    if spec.type not in CONVERTERS:
        result.examples = template_examples(rows, spec, result.dropped, group_by=group_by)
        return result
    convert = CONVERTERS[spec.type]
    for row in rows:
        example = _grouped(convert(row, spec), group_value(row, group_by) if group_by else None)
        if isinstance(example, str):
            result.dropped[example] += 1
        else:
            result.examples.append(example)
    return result
