"""Domain templates: data (YAML), not code.

A template says which input shapes it accepts (canonical fields and the column names
that may hold them, or chat `messages`), the system prompt, how a row becomes the user
and assistant turns, optional classification labels, default evaluation metrics,
cleaning options and augmentation tables. Templates come from the registry (builtins
in ``ft_plugin/templates/`` and the ``ft_plugin.templates`` entry point), a path, or
``hf://OWNER/REPO[@REV]/PATH``.
"""

from __future__ import annotations

import re
import string
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ft_plugin import registry
from ft_plugin.errors import DataError, RecipeError
from ft_plugin.hub import refs


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelSpec(_Strict):
    """Classification labels: the canonical field, allowed values, aliases."""

    field: str = Field("label", description="Canonical field holding the label.")
    values: list[str] = Field(
        min_length=2, description="Allowed labels, as the model should answer them."
    )
    aliases: dict[str, str] = Field(
        default_factory=dict, description="Other spellings (or numeric codes) mapped to a label."
    )

    def normalize(self, raw: Any) -> str | None:
        """The canonical label for ``raw`` (case-insensitive, aliases applied), or None."""
        if raw is None or isinstance(raw, bool | list | dict):
            return None
        key = str(raw).strip()
        by_lower = {v.lower(): v for v in self.values}
        by_lower.update({str(k).lower(): v for k, v in self.aliases.items()})
        return by_lower.get(key.lower())


class CleaningSpec(_Strict):
    """Cleaning defaults for data in this template (``ft-plugin data prepare`` and training)."""

    scrub_pii: bool = Field(
        False, description="Replace e-mails, phones, IDs with typed placeholders."
    )
    min_chars: int = Field(1, ge=0, description="Drop rows whose text is shorter.")
    max_chars: int | None = Field(None, ge=1, description="Drop rows whose text is longer.")
    near_dup_threshold: float | None = Field(
        0.85, gt=0, le=1, description="MinHash Jaccard threshold."
    )


class AugmentationSpec(_Strict):
    """Augmentation tables shipped with the template."""

    slots: dict[str, list[str]] = Field(default_factory=dict, description="Slot name → values.")
    patterns: list[dict[str, str]] = Field(
        default_factory=list, description="Rows with {slot} placeholders, filled from `slots`."
    )
    synonyms: dict[str, list[str]] = Field(default_factory=dict, description="Term → synonyms.")


class Template(_Strict):
    """A domain dataset template."""

    name: str
    domain: str
    description: str
    disclaimer: str | None = Field(
        None, description="Limits of use, for model cards and the Space."
    )
    language: list[str] = Field(default_factory=lambda: ["en"])
    system_prompt: str | None = None
    fields: dict[str, list[str]] = Field(
        description="Canonical field → column names that may hold it (first present wins)."
    )
    required: list[str] = Field(description="Canonical fields a row must have.")
    user: str = Field(description="User turn, with {field} placeholders.")
    assistant: str = Field(description="Assistant turn, with {field} placeholders.")
    accepts_messages: bool = Field(
        True, description="Also accept rows with a chat `messages` list."
    )
    labels: LabelSpec | None = None
    metrics: list[str] = Field(default_factory=lambda: ["perplexity"])
    cleaning: CleaningSpec = Field(default_factory=CleaningSpec)
    augmentation: AugmentationSpec = Field(default_factory=AugmentationSpec)
    examples: list[str] = Field(default_factory=list, description="Example prompts for demos.")

    @model_validator(mode="after")
    def _placeholders_are_fields(self) -> Template:
        for where in ("user", "assistant"):
            for _, name, spec, conversion in string.Formatter().parse(getattr(self, where)):
                if name is not None and name not in self.fields:
                    raise ValueError(
                        f"{where}: placeholder {{{name}}} is not one of fields: {list(self.fields)}"
                    )
                # A format spec pads or converts: {instruction:>2000000000} builds 2 GB a row.
                if name is not None and (spec or conversion):
                    raise ValueError(
                        f"{where}: placeholder {{{name}{'!' + conversion if conversion else ''}"
                        f"{':' + spec if spec else ''}}} has a format spec; write {{{name}}}"
                    )
        missing = [f for f in self.required if f not in self.fields]
        if missing:
            raise ValueError(f"required: {missing} not in fields")
        if self.labels and self.labels.field not in self.fields:
            raise ValueError(f"labels.field: {self.labels.field!r} not in fields")
        return self

    @property
    def text_fields(self) -> list[str]:
        """Canonical fields holding free text (everything but the label)."""
        label = self.labels.field if self.labels else None
        return [f for f in self.fields if f != label]

    def canonical(
        self, row: dict[str, Any], mapping: dict[str, str] | None = None
    ) -> dict[str, Any]:
        """Rename a row's columns to canonical fields (``mapping`` from the recipe wins)."""
        out: dict[str, Any] = {}
        for field, columns in self.fields.items():
            candidates = [mapping[field]] if mapping and field in mapping else columns
            for column in candidates:
                if column in row:
                    out[field] = row[column]
                    break
        if self.labels and self.labels.field in out:
            out[self.labels.field] = (
                self.labels.normalize(out[self.labels.field]) or out[self.labels.field]
            )
        return out

    def render(self, row: dict[str, Any]) -> dict[str, list[dict[str, str]]] | str:
        """A canonical row → TRL prompt/completion messages; a str is the reason to drop it."""
        for field in self.required:
            value = row.get(field)
            if value is None or (isinstance(value, str) and not value.strip()):
                return f"missing_field:{field}"
        if self.labels:
            label = self.labels.normalize(row.get(self.labels.field))
            if label is None:
                return "unknown_label"
            row = {**row, self.labels.field: label}
        values = {f: "" if row.get(f) is None else str(row.get(f)).strip() for f in self.fields}
        prompt = []
        if self.system_prompt:
            prompt.append({"role": "system", "content": self.system_prompt.strip()})
        prompt.append({"role": "user", "content": _fill(self.user, values)})
        return {
            "prompt": prompt,
            "completion": [{"role": "assistant", "content": _fill(self.assistant, values)}],
        }


def _fill(pattern: str, values: dict[str, str]) -> str:
    # Empty optional fields leave blank lines behind; fold them so the prompt reads cleanly.
    text = pattern.format_map(values)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def load_template(reference: str) -> Template:
    """A template by registry name, file path or ``hf://`` reference.

    Example:
        >>> load_template("finance-sentiment").labels.values
        ['bearish', 'bullish', 'neutral']
    """
    import yaml

    from ft_plugin.config.yaml_source import load_value

    if refs.is_hub_ref(reference):
        path = refs.download(refs.parse_hub_ref(reference))
    elif reference in registry.templates():
        path = registry.templates()[reference].path
    else:
        path = Path(reference)
        if not path.is_file():
            known = ", ".join(sorted(registry.templates()))
            raise DataError(
                f"{reference}: no template file or registered template by that name; known: {known}"
            )
    try:  # safe, and no anchors or aliases: a template may come from the Hub
        data = load_value(path.read_text(encoding="utf-8"), reference, "template")
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise RecipeError(
            "YAML syntax error", file=reference, line=mark.line + 1 if mark else None
        ) from None
    try:
        return Template.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(p) for p in error["loc"]) or "template"
        message = error["msg"].removeprefix("Value error, ")
        raise RecipeError(f"{key}: {message}", file=reference) from None
