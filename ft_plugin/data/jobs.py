"""Prepare jobs: what `ft-plugin data prepare` cleans, one job per dataset.

A job comes either from files named on the command line (``--template``, ``--input``,
``--field``, ``--encoding``) or from each dataset of a recipe (its ``type:`` template,
``field_*`` keys and ``encoding:``). Running a job is `prepare_dataset` with the job's
template, inputs, column mapping and encoding.

Example:
    >>> job = jobs_for_files("medical", ["rows.jsonl"], ["instruction=ask"], None)[0]
    >>> job.template, job.inputs, job.field_map
    ('medical', ['rows.jsonl'], {'instruction': 'ask'})
    >>> [p.as_posix() for p in job_outputs(Path("out/clean.jsonl"), 2)]
    ['out/clean.0.jsonl', 'out/clean.1.jsonl']
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from .prepare import PrepareOptions, PrepareResult, prepare_dataset


@dataclass(frozen=True)
class PrepareJob:
    """One dataset to clean: a template reference, its input files and how to read them."""

    template: str
    inputs: list[str]
    field_map: dict[str, str] = field(default_factory=dict)  # template field -> column
    recipe_key: str | None = None  # `datasets.N` when the job comes from a recipe
    encoding: str | None = None  # None detects


def jobs_for_files(
    template: str | None,
    inputs: list[str] | None,
    field_pairs: list[str] | None,
    encoding: str | None,
) -> list[PrepareJob]:
    """The single job of ``--template T --input F… [--field K=COL]… [--encoding E]``."""
    from .columns import parse_field_arguments
    from .templates import load_template

    if not template or not inputs:
        raise UserError("data prepare: give RECIPE, or --template NAME with --input FILE")
    fields = parse_field_arguments(field_pairs, load_template(template))
    return [PrepareJob(template, list(inputs), fields, None, encoding)]


def jobs_for_recipe(recipe: str, overrides: Mapping[str, Any] | None = None) -> list[PrepareJob]:
    """One job per dataset of ``recipe`` (with ``overrides``, dotted keys to values); each
    dataset's ``type:`` must be a template."""
    from ft_plugin.config import load_recipe

    from .formats import CONVERTERS, template_mapping
    from .templates import load_template

    jobs = []
    for index, spec in enumerate(load_recipe(recipe, overrides).recipe.datasets):
        if spec.type in CONVERTERS:
            raise UserError(
                f"datasets.{index}.type: {spec.type} has no template to clean by; "
                "use a domain template type (ft-plugin templates list) or --template"
            )
        mapping = template_mapping(load_template(spec.type), spec)
        jobs.append(PrepareJob(spec.type, [spec.path], mapping, f"datasets.{index}", spec.encoding))
    return jobs


def job_outputs(output: Path, count: int) -> list[Path]:
    """Where each of ``count`` jobs writes: ``output`` itself, or ``STEM.N.SUFFIX`` per job."""
    if count == 1:
        return [output]
    return [output.with_name(f"{output.stem}.{i}{output.suffix}") for i in range(count)]


def run_job(
    job: PrepareJob,
    output: Path,
    options: PrepareOptions,
    *,
    tokenizer: Any | None,
    report_path: Path | None = None,
) -> PrepareResult:
    """Clean ``job`` into ``output`` with ``options`` (the job's fields and encoding win)."""
    from .templates import load_template

    options = replace(
        options, field_map=job.field_map, encoding=job.encoding, recipe_key=job.recipe_key
    )
    template = load_template(job.template)
    return prepare_dataset(
        template, job.inputs, output, tokenizer=tokenizer, options=options, report_path=report_path
    )
