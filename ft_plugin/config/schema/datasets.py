"""Recipe keys about training data (Axolotl names)."""

from __future__ import annotations

from pydantic import Field, field_validator

from .base import Section

BUILTIN_DATASET_TYPES = ("alpaca", "chat_template", "completion")


class DatasetSection(Section):
    """One entry of `datasets:` (or `test_datasets:`)."""

    path: str = Field(
        description="Where the rows are: a local jsonl/json/csv/tsv/txt/parquet file, a folder "
        "saved with `datasets`, a Hub dataset id, or `builtin:NAME` for a template's sample data."
    )
    encoding: str | None = Field(
        None,
        description="Text encoding of a local jsonl/json/csv/tsv/txt file (e.g. gb18030, utf-16, "
        "latin-1); default: detected, and confirmed on the whole file.",
    )
    type: str = Field(
        "alpaca",
        description="Row shape: `alpaca` (instruction/input/output), `chat_template` (messages), "
        "`completion` (raw text), or a domain template (`medical`, `legal`, …, a path or hf://).",
    )
    name: str | None = Field(None, description="Dataset configuration name (Hub datasets).")
    split: str = Field("train", description="Split to read.")
    data_files: str | list[str] | None = Field(None, description="Files inside a Hub dataset repo.")
    revision: str | None = Field(None, description="Hub revision of the dataset.")
    weight: float = Field(1.0, gt=0, description="Mixing weight when several datasets are given.")
    field_instruction: str | None = Field(None, description="Column holding the instruction.")
    field_input: str | None = Field(None, description="Column holding the optional input/context.")
    field_output: str | None = Field(None, description="Column holding the answer.")
    field_system: str | None = Field(None, description="Column holding a per-row system prompt.")
    field_messages: str | None = Field(None, description="Column holding the chat messages list.")
    field_text: str | None = Field(None, description="Column holding raw text (`completion`).")
    field_label: str | None = Field(None, description="Column holding the class label.")
    message_property_mappings: dict[str, str] | None = Field(
        None, description="Rename message keys, e.g. `{role: from, content: value}` (ShareGPT)."
    )
    chunk_overlap: int = Field(
        0,
        ge=0,
        description="`completion` only: long texts are cut into `sequence_len`-token windows "
        "that share this many tokens, instead of being truncated.",
    )
    clean: bool = Field(
        True,
        description="Domain templates: clean rows as the template says (normalise, strip markup, "
        "PII, duplicates) before training.",
    )
    max_rows: int | None = Field(
        None, ge=1, description="Use at most this many rows (after shuffling)."
    )


class DatasetsSection(Section):
    datasets: list[DatasetSection] = Field(
        min_length=1, description="Training datasets; several are mixed by `weight`."
    )
    test_datasets: list[DatasetSection] | None = Field(
        None, description="Explicit evaluation datasets (instead of `val_set_size`)."
    )
    val_set_size: float = Field(
        0.0,
        ge=0,
        description="Held-out share of the training rows for evaluation: a fraction in [0, 1) "
        "or a whole number of rows (>= 1). Seeded by `seed`.",
    )
    dataset_shuffle_seed: int | None = Field(
        None, description="Seed for mixing and splitting; defaults to `seed`."
    )

    @field_validator("val_set_size")
    @classmethod
    def _fraction_or_rows(cls, value: float) -> float:
        if value >= 1 and value != int(value):
            raise ValueError(
                f"{value:g} is neither a fraction in [0, 1) nor a whole number of rows; "
                f"write e.g. 0.1 for 10% or {round(value)} for {round(value)} rows"
            )
        return value
