"""Preference rows for `rl:` runs, from Axolotl's preference dataset types.

Each type reads a row's columns into one shape (system, prompt turns, chosen and rejected
answers; for KTO one answer and its label) and writes TRL's text columns: `prompt`,
`chosen`, `rejected` (pairs) or `prompt`, `completion`, `label` (KTO). `chatml.*` and
`llama3.*` write that chat format's text exactly as Axolotl does; `chat_template.*`
renders with the model's chat template (or the recipe's `chat_template`). A domain
template's name is its preference form: the template writes the system prompt and the
user turn from the row's fields, and its answer pattern holds `chosen` and `rejected`
(`field_chosen` / `field_rejected`), so a medical pair trains on the medical prompt.
"""

from __future__ import annotations

import random
import string
from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import DataError

from .chat import message_mapping, role_table
from .examples import TrainingData, held_out_split, shuffle_seed
from .reading import rows_of

if TYPE_CHECKING:
    from ft_plugin.config import Recipe
    from ft_plugin.config.schema import DatasetSection

Turns = list[dict[str, str]]
MISSING = "missing_or_empty_field"
DUPLICATE = "duplicate"
TEMPLATE_FAILED = "chat_template_failed"


def _first(row: dict[str, Any], *keys: str) -> Any:
    return next((row[k] for k in keys if k in row), None)


def _user(text: Any) -> Turns:
    return [{"role": "user", "content": text}] if isinstance(text, str) and text else []


def _last_content(value: Any) -> Any:
    """An answer given as text, one message, or a conversation whose last turn it is."""
    if isinstance(value, list) and value and isinstance(value[-1], dict):
        value = value[-1]
    return value.get("content") if isinstance(value, dict) else value


# Axolotl's variants, by the columns they read (prompt_strategies/dpo|kto/chatml.py).
PAIR_FIELDS: dict[str, Callable[[dict[str, Any]], tuple[Turns, Any, Any]]] = {
    "default": lambda r: (_user(_first(r, "prompt", "input", "question", "instruction")),
                          _first(r, "chosen", "chosen_response"),
                          _first(r, "rejected", "rejected_response")),
    "argilla": lambda r: (_user(r.get("instruction")), r.get("chosen_response"),
                          r.get("rejected_response")),
    "intel": lambda r: (_user(r.get("question")), r.get("chosen"), r.get("rejected")),
    "icr": lambda r: (_user(r.get("input")), r.get("chosen"), r.get("rejected")),
    "prompt_pairs": lambda r: (_user(r.get("prompt")), r.get("chosen"), r.get("rejected")),
    "ultra": lambda r: (_user(r.get("prompt")), _last_content(r.get("chosen")),
                        _last_content(r.get("rejected"))),
    "argilla_chat": lambda r: (_user(_first_content(r.get("chosen"))),
                               _last_content(r.get("chosen")), _last_content(r.get("rejected"))),
}  # fmt: skip
KTO_FIELDS: dict[str, Callable[[dict[str, Any]], tuple[Turns, Any]]] = {
    "argilla": lambda r: (_user(r.get("instruction")), r.get("completion")),
    "intel": lambda r: (_user(r.get("question")), r.get("completion")),
    "prompt_pairs": lambda r: (_user(r.get("prompt")), r.get("completion")),
    "ultra": lambda r: (_user(r.get("prompt")), r.get("completion")),
    "argilla_chat": lambda r: (_history(r.get("completion")), _last_content(r.get("completion"))),
}  # fmt: skip


def _first_content(conversation: Any) -> Any:
    if isinstance(conversation, list) and conversation and isinstance(conversation[0], dict):
        return conversation[0].get("content")
    return None


def _history(conversation: Any) -> Turns:
    if not isinstance(conversation, list) or len(conversation) < 2:
        return []
    return [{"role": t.get("role"), "content": t.get("content")} for t in conversation[:-1]]


# The text of a turn and of the answer's opening in the two fixed chat formats Axolotl writes.
FORMATS = {
    "chatml": ("<|im_start|>{role}\n{content}<|im_end|>\n", "<|im_start|>assistant\n", "<|im_end|>"),
    "llama3": ("<|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>",
               "<|start_header_id|>assistant<|end_header_id|>\n\n", "<|eot_id|>"),
}  # fmt: skip


class PreferenceRenderer:
    """Turns a (system, prompt turns, answer) into TRL's text for one dataset entry."""

    def __init__(self, spec: DatasetSection, tokenizer: Any, template: str | None) -> None:
        self.format = spec.type.split(".", 1)[0]
        self.tokenizer, self.template = tokenizer, template
        self.failure = ""  # the last chat-template error, for the message if every row fails

    def prompt(self, system: str | None, turns: Turns) -> str:
        turns = ([{"role": "system", "content": system}] if system else []) + turns
        if self.format in FORMATS:
            turn, opening, _ = FORMATS[self.format]
            return "".join(turn.format(**t) for t in turns) + opening
        return self.tokenizer.apply_chat_template(
            turns, add_generation_prompt=True, chat_template=self.template, tokenize=False
        )

    def answer(self, prompt_text: str, system: str | None, turns: Turns, answer: str) -> str:
        if self.format in FORMATS:
            return answer + FORMATS[self.format][2]
        turns = ([{"role": "system", "content": system}] if system else []) + turns
        full = self.tokenizer.apply_chat_template(
            [*turns, {"role": "assistant", "content": answer}], chat_template=self.template,
            tokenize=False,
        )  # fmt: skip
        # the answer is what the conversation adds after the prompt (Axolotl's ORPO rule);
        # a template that rewrites earlier turns falls back to the answer's first occurrence
        tail = (
            full[len(prompt_text) :] if full.startswith(prompt_text) else full[full.find(answer) :]
        )
        return tail.rstrip("\n")


def _chat_template_row(row: dict[str, Any], spec: DatasetSection) -> tuple[Turns, Any, Any]:
    """`chat_template.default` / `argilla` / `argilla_chat`: messages mapped through the
    entry's `message_property_mappings` and `roles`, as Axolotl maps them."""
    mapping, roles = message_mapping(spec), role_table(spec)

    def turn(message: dict[str, Any]) -> dict[str, Any]:
        role = message.get(mapping["role"])
        return {"role": roles.get(role, role), "content": message.get(mapping["content"])}

    chosen, rejected = (
        row.get(spec.field_chosen or "chosen"),
        row.get(spec.field_rejected or "rejected"),
    )
    if spec.type == "chat_template.default":
        messages = row.get(spec.field_messages or "messages")
        messages = _user(messages) if isinstance(messages, str) else messages
        turns = [turn(m) for m in messages or [] if isinstance(m, dict)]
    else:  # argilla forms: each answer is the whole conversation; the prompt is its history
        turns = [turn(m) for m in (chosen or [])[:-1] if isinstance(m, dict)]

    def answer(value: Any) -> Any:
        if isinstance(value, list) and value and isinstance(value[-1], dict):
            value = value[-1]
        return turn(value)["content"] if isinstance(value, dict) else value

    return turns, answer(chosen), answer(rejected)


def _domain_template(spec: DatasetSection) -> Any | None:
    """The domain template a `type:` names (its preference form); None for Axolotl's
    FORMAT.VARIANT types."""
    if spec.type.split(".", 1)[0] in (*FORMATS, "chat_template"):
        return None
    from .templates import load_template

    return load_template(spec.type)


def _template_row(row: dict[str, Any], spec: DatasetSection, template: Any) -> tuple | None:
    """(system, prompt turns, chosen, rejected) in ``template``'s words: its prompt from
    the row's fields, each answer through its answer pattern; None when a field is missing."""
    from .formats import template_mapping

    canonical = template.canonical(row, template_mapping(template, spec))
    slots = [name for _, name, _, _ in string.Formatter().parse(template.assistant) if name]
    answers = [row.get(spec.field_chosen or "chosen"), row.get(spec.field_rejected or "rejected")]
    rendered = [
        template.render({**canonical, **dict.fromkeys(slots, answer)}) for answer in answers
    ]
    if any(isinstance(r, str) for r in rendered) or not all(isinstance(a, str) for a in answers):
        return None
    prompt = rendered[0]["prompt"]
    system = next((m["content"] for m in prompt if m["role"] == "system"), None)
    turns = [m for m in prompt if m["role"] != "system"]
    return system, turns, *(r["completion"][0]["content"] for r in rendered)


def preference_rows(
    rows: list[dict[str, Any]],
    spec: DatasetSection,
    renderer: PreferenceRenderer,
    kto: bool = False,
) -> tuple[list[dict[str, Any]], Counter[str]]:
    """TRL's text columns for each usable row of one dataset entry, and why others dropped.

    Example:
        >>> from ft_plugin.config.schema import DatasetSection
        >>> spec = DatasetSection(path="x", type="chatml.intel")
        >>> rows, _ = preference_rows([{"question": "Q?", "chosen": "A", "rejected": "B"}],
        ...                           spec, PreferenceRenderer(spec, None, None))
        >>> rows[0]["prompt"], rows[0]["chosen"]
        ('<|im_start|>user\\nQ?<|im_end|>\\n<|im_start|>assistant\\n', 'A<|im_end|>')
    """
    from jinja2 import TemplateError

    template = None if kto else _domain_template(spec)
    variant = spec.type.split(".", 1)[-1]
    out, dropped = [], Counter[str]()
    for row in rows:
        system = row.get(spec.field_system or "system") or None
        if template is not None:
            parts = _template_row(row, spec, template)
            system, turns, *answers = parts or (None, [], None, None)
        elif kto:
            turns, completion = KTO_FIELDS[variant](row)
            answers = [completion]
        elif spec.type.startswith("chat_template."):
            turns, *answers = _chat_template_row(row, spec)
        else:
            turns, *answers = PAIR_FIELDS[variant](row)
        if not turns or not all(isinstance(a, str) and a.strip() for a in answers):
            dropped[MISSING] += 1
            continue
        try:
            prompt = renderer.prompt(system, turns)
            texts = [renderer.answer(prompt, system, turns, a) for a in answers]
        except (TemplateError, ValueError, TypeError) as exc:  # e.g. roles a template refuses
            renderer.failure = f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
            dropped[TEMPLATE_FAILED] += 1
            continue
        if kto:
            out.append({"prompt": prompt, "completion": texts[0], "label": bool(row.get("label"))})
        else:
            out.append({"prompt": prompt, "chosen": texts[0], "rejected": texts[1]})
    return out, dropped


def build_preference_data(recipe: Recipe, tokenizer: Any | None) -> TrainingData:
    """Train / eval rows of an `rl:` recipe: every `datasets` entry read and rendered,
    exact duplicates dropped under `dataset_exact_deduplication`, held out as `test_datasets` or a seeded `val_set_size` split.

    Example (usage, not run as a doctest: it needs a model's tokenizer)::

        data = build_preference_data(load_recipe("my-dpo.yaml").recipe, tokenizer)
        data.train.column_names  # ['prompt', 'chosen', 'rejected']
    """
    from datasets import Dataset

    from .template_choice import resolve_chat_template

    seed = shuffle_seed(recipe)
    kto, dedup = recipe.rl == "kto", bool(recipe.dataset_exact_deduplication)
    template = None
    if tokenizer is not None and any(
        s.type.split(".", 1)[0] not in FORMATS for s in recipe.datasets
    ):
        template = resolve_chat_template(
            recipe.chat_template, recipe.chat_template_jinja, tokenizer
        )

    def read(entries: list[DatasetSection]) -> tuple[list[dict[str, Any]], Counter[str]]:
        out, dropped, seen = [], Counter[str](), set()
        for index, spec in enumerate(entries):
            rows = rows_of(spec)
            renderer = PreferenceRenderer(spec, tokenizer, spec_template(spec, template, tokenizer))
            made, more = preference_rows(rows, spec, renderer, kto)
            dropped.update(more)
            if not made:
                why = f": {renderer.failure}" if renderer.failure else ""
                raise DataError(f"{spec.path}: no usable rows for type {spec.type} "
                                f"({dict(more) or 'the file is empty'}){why}; the columns each "
                                "type reads are in README.md, Preference tuning")  # fmt: skip
            if spec.max_rows is not None:
                random.Random(seed + index).shuffle(made)
                made = made[: spec.max_rows]
            for row in made:
                key = tuple(sorted(row.items()))
                if dedup and key in seen:  # `dataset_exact_deduplication`, as in Axolotl
                    dropped[DUPLICATE] += 1
                    continue
                seen.add(key)
                out.append(row)
        return out, dropped

    train, dropped = read(recipe.datasets)
    if kto:  # KTO trains in a fixed order (its KL pairs neighbours): shuffle once, seeded
        random.Random(seed).shuffle(train)
    held_out: list[dict[str, Any]] = []
    if recipe.test_datasets:
        held_out, more = read(recipe.test_datasets)
        dropped.update(more)
    elif recipe.val_set_size:
        random.Random(seed).shuffle(train)
        held_out, train = held_out_split(train, recipe.val_set_size, shuffled=True)
    kind = "judged answers" if kto else "pairs"
    reasons = ", ".join(f"{v} {k}" for k, v in dropped.items())
    note = f"{recipe.rl}: {len(train)} train / {len(held_out)} eval {kind}" + (
        f" (dropped {reasons})" if reasons else ""
    )
    notes = [note]
    if recipe.dataset_prepared_path:
        notes.append("dataset_prepared_path: preference pairs are read and rendered each run "
                     "(seconds for thousands of pairs); nothing is saved there")  # fmt: skip
    return TrainingData(Dataset.from_list(train), Dataset.from_list(held_out) if held_out else None,
                        dropped, None, notes)  # fmt: skip


def spec_template(spec: DatasetSection, recipe_template: str | None, tokenizer: Any) -> str | None:
    """The entry's own chat template when it names one, else the recipe's (Axolotl's rule)."""
    if not spec.type.startswith("chat_template.") or tokenizer is None:
        return None
    if spec.chat_template or spec.chat_template_jinja:
        from .template_choice import resolve_chat_template

        return resolve_chat_template(spec.chat_template, spec.chat_template_jinja, tokenizer)
    return recipe_template
