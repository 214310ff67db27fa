"""What `ft-plugin eval` evaluates on: the settings, and the rows (``--data`` through the
template, or a run's held-out split), sampled with a seed when there are more than
``--max-samples``, each carrying its ``--group-by`` value."""

from __future__ import annotations

import random
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ft_plugin.data.formats import GROUP, MISSING_GROUP
from ft_plugin.errors import DataError, UserError

from .targets import LoadedTarget


@dataclass
class EvalSettings:
    """What to evaluate and how (the `ft-plugin eval` options)."""

    data: str | None = None
    template: str | None = None
    # None below: the run's recipe `eval:` value, else the default (`with_recipe_defaults`)
    baseline: bool | None = None  # default False
    metrics: list[str] | None = None  # default: the template's metrics
    max_samples: int | None = None  # default 200; 0: every row; else a seeded random sample
    max_new_tokens: int | None = None  # default 128
    generation_batch_size: int = 1  # >1: batched answers for text metrics; latency stays batch 1
    scoring: Literal["loglik", "generate"] = "loglik"
    dtype: str = "float32"  # of the weights; bfloat16 is faster where the hardware has it
    price_per_hour: float | None = None
    latency_samples: int = 8
    sequence_len: int | None = None
    data_type: str | None = (
        None  # alpaca, chat_template, completion; None: the template, or detected
    )
    fields: dict[str, str] = field(default_factory=dict)  # template field -> column (--field)
    encoding: str | None = None  # of a local --data file; None detects
    bootstrap: int = 1000  # paired bootstrap resamples for the intervals; 0: none
    seed: int = 0  # of the row sample, the bootstrap and the rows shown in report.md
    group_by: str | None = None  # a column of --data: every metric per group


DEFAULTS = {"baseline": False, "max_samples": 200, "max_new_tokens": 128}


def with_recipe_defaults(settings: EvalSettings, recipe: Any | None) -> EvalSettings:
    """``settings`` with every unset (None) option taken from the run's recipe ``eval:``
    section, else from ``DEFAULTS``: the command line wins, then the recipe.

    Example:
        >>> with_recipe_defaults(EvalSettings(max_samples=5), None).max_samples
        5
        >>> s = with_recipe_defaults(EvalSettings(), None); s.max_samples, s.baseline
        (200, False)
    """
    section = recipe.eval if recipe is not None else None
    chosen: dict[str, Any] = {}
    for name, default in (*DEFAULTS.items(), ("metrics", None)):
        if getattr(settings, name) is None:
            chosen[name] = getattr(section, name) if section is not None else default
    return replace(settings, **chosen)


@dataclass
class EvalData:
    examples: list[dict[str, Any]]
    source: str
    template: Any | None  # ft_plugin.data.templates.Template
    rows_given: int = 0  # usable rows before the --max-samples sample
    group_by: str | None = None

    @property
    def sampled(self) -> bool:
        return len(self.examples) < self.rows_given

    def groups(self) -> dict[str, list[int]]:
        """Group name → indices of its rows (in first-seen order); empty without --group-by."""
        out: dict[str, list[int]] = {}
        if self.group_by:
            for i, example in enumerate(self.examples):
                out.setdefault(example.get(GROUP, MISSING_GROUP), []).append(i)
        return out

    @property
    def labels(self) -> list[str] | None:
        return self.template.labels.values if self.template and self.template.labels else None


def _template_of(target: LoadedTarget, settings: EvalSettings) -> Any | None:
    from ft_plugin.data.formats import CONVERTERS
    from ft_plugin.data.templates import load_template

    name = settings.template
    if name in CONVERTERS:  # `--template completion` means the dataset type
        return None
    if name is None and settings.data and settings.data_type:
        return None
    if name is None and target.recipe is not None:
        first = target.recipe.datasets[0].type
        name = None if first in CONVERTERS else first
    return load_template(name) if name else None


def evaluation_data(target: LoadedTarget, settings: EvalSettings) -> EvalData:
    """``--data`` through the template, or the run's own held-out rows."""
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data import build_training_data
    from ft_plugin.data.formats import (
        Conversion,
        check_group_column,
        convert_rows,
        template_examples,
    )
    from ft_plugin.data.reading import read_rows

    template = _template_of(target, settings)
    group_by = settings.group_by
    if settings.data:
        rows = read_rows(settings.data, encoding=settings.encoding)
        if group_by:
            check_group_column(settings.data, rows, group_by)
        if template is not None:
            from ft_plugin.data.columns import check_columns

            check_columns(template, settings.data, rows[:100], settings.fields)
        kind = template.name if template else settings.data_type or _detected_type(settings, rows)
        spec = DatasetSection(path=settings.data, type=kind, **_field_keys(kind, settings.fields))
        if template is not None:  # --field names template fields here, not recipe keys
            converted = Conversion([])
            converted.examples = template_examples(rows, spec, converted.dropped,
                                                   mapping=settings.fields, group_by=group_by)  # fmt: skip
        else:
            converted = convert_rows(rows, spec, group_by=group_by)
        if not converted.examples:
            reasons = (
                ", ".join(f"{k}: {v}" for k, v in converted.dropped.items()) or "the file is empty"
            )
            raise DataError(f"{settings.data}: no rows to evaluate ({reasons})")
        examples, source = converted.examples, settings.data
    elif target.recipe is not None:
        held_out = build_training_data(target.recipe, target.tokenizer, group_by=group_by).eval
        if held_out is None:
            raise UserError(
                f"{target.name}: the recipe has no held-out split (val_set_size/test_datasets); pass --data"
            )
        examples, source = list(held_out), f"{target.name} (held-out split)"
    else:
        raise UserError(f"{target.name}: a base model has no data of its own; pass --data FILE")
    chosen = sample_rows(len(examples), settings.max_samples, settings.seed)
    return EvalData([examples[i] for i in chosen], source, template, len(examples), group_by)


def sample_rows(given: int, cap: int, seed: int) -> list[int]:
    """Indices of the rows to evaluate: all when ``cap`` is 0 or not below ``given``, else a
    seeded random ``cap`` of them, in their original order.

    Example:
        >>> sample_rows(5, 0, seed=0), sample_rows(5, 9, seed=0), sample_rows(10, 3, seed=0)
        ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4], [0, 6, 9])
    """
    if cap <= 0 or cap >= given:
        return list(range(given))
    return sorted(random.Random(seed).sample(range(given), cap))


def _detected_type(settings: EvalSettings, rows: list[dict[str, Any]]) -> str:
    """A file without a template: chat rows, raw text rows, or instruction rows."""
    if settings.template in ("alpaca", "chat_template", "completion"):
        return settings.template
    columns = set().union(*(row.keys() for row in rows[:100])) if rows else set()
    if "messages" in columns:
        return "chat_template"
    if "text" in columns and "instruction" not in columns and not settings.fields:
        return "completion"
    return "alpaca"


def _field_keys(kind: str, fields: dict[str, str]) -> dict[str, str]:
    """`--field instruction=ask` → `field_instruction="ask"` for the builtin row types."""
    if kind not in ("alpaca", "chat_template", "completion"):
        return {}
    return {f"field_{name}": column for name, column in fields.items()}
