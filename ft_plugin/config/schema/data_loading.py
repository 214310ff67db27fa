"""Recipe keys about the run's data as a whole (Axolotl names): the `datasets:` entries
(`datasets.py`), the eval split, mixing, deduplication, the prepared-data cache and
streaming."""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .base import Section
from .datasets import (
    CHAT_TEMPLATE_CALL_ARGUMENTS,
    DatasetSection,
    PretrainingDatasetSection,
    check_chat_template_choice,
    check_jinja_pair,
)


class DatasetsSection(Section):
    pretraining_dataset: list[PretrainingDatasetSection] | None = Field(
        None,
        min_length=1,
        description="Axolotl's pre-training corpus: entries with `path`, `type: pretrain`, "
        "`text_column`, `split`, `skip`, `name`, `data_files`; streamed (unless `streaming: "
        "false`) and used as `datasets` (give one of the two). Needs `max_steps`.",
    )
    streaming: bool | None = Field(
        None,
        description="Read the training rows with `datasets` streaming (an IterableDataset), so "
        "a corpus larger than memory trains; needs `max_steps`. Default: on with "
        "`pretraining_dataset`, else off.",
    )
    datasets: list[DatasetSection] = Field(
        None,
        validate_default=True,
        description="Training datasets; several are mixed by `weight`. Required unless "
        "`pretraining_dataset` is given.",
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
    shuffle_merged_datasets: bool = Field(
        True,
        description="Shuffle the merged rows (seeded). `false` keeps each dataset's rows in file "
        "order and the datasets in their order in `datasets` (the held-out rows are then the "
        "last ones, as in Axolotl); the trainer still draws batches at random.",
    )
    shuffle_before_merging_datasets: bool = Field(
        False, description="Shuffle each dataset on its own (seeded) before merging them."
    )
    dataset_exact_deduplication: bool = Field(
        False,
        description="Drop rows identical to an earlier row (training and evaluation rows each), "
        "before splitting; the run says how many. Not with streaming.",
    )
    dataset_prepared_path: str | None = Field(
        None,
        description="Folder where the prepared rows (read, converted, mixed, split and, with "
        "the model's tokenizer, tokenized chat rows) are saved, under a hash of the "
        "recipe's data keys, the data files and the tokenizer; the next run of the same recipe "
        "reads them back instead of the sources. Not used with streaming.",
    )
    chat_template_jinja: str | None = Field(
        None,
        description="A Jinja chat template (a string, or a file) for `chat_template: jinja`; "
        "with `chat_template` empty it is used as if `chat_template: jinja`.",
    )
    chat_template_kwargs: dict[str, Any] | None = Field(
        None,
        description="Axolotl's extra variables for the chat template, e.g. `{enable_thinking: "
        "false}` (Qwen3) or `{reasoning_effort: low}` (gpt-oss): passed to "
        "apply_chat_template wherever training rows are rendered (the data stage, TRL's "
        "tokenization, the preview and the scoring of evaluation rows), as TRL's per-row "
        "`chat_template_kwargs`.",
    )
    min_sample_len: int | None = Field(
        None,
        ge=1,
        description="Drop training and evaluation rows shorter than this many tokens once "
        "rendered (Axolotl counts input_ids the same way); the run says how many. Default: "
        "no minimum.",
    )

    @field_validator("chat_template_kwargs")
    @classmethod
    def _template_variables(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        taken = [key for key in value or {} if key in CHAT_TEMPLATE_CALL_ARGUMENTS]
        if taken:
            raise ValueError(f"{', '.join(taken)}: an argument of apply_chat_template itself, "
                             "not a template variable; remove it (chat_template: chooses the "
                             "template)")  # fmt: skip
        return value

    @field_validator("streaming")
    @classmethod
    def _streaming_without_replay(cls, value: bool | None, info: ValidationInfo) -> bool | None:
        if _streams({**info.data, "streaming": value}) and info.data.get("replay"):
            raise ValueError("replay draws from rows in memory; it cannot mix into streamed rows")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _streams_need_max_steps(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Axolotl's rule, reported beside every other problem of the recipe (a field
        validator failing here would hide what `streaming` implies for the keys after it)."""
        key = _streaming_key(data) if isinstance(data, dict) else None
        if key is None or data.get("max_steps"):
            return handler(data)
        errors: list[Any] = []
        try:
            handler(data)
        except ValidationError as exc:
            errors = exc.errors()
        needs = PydanticCustomError("value_error", "{error}", {"error": _NEEDS_MAX_STEPS})
        errors.append({"type": needs, "loc": (key,), "input": data.get(key)})
        raise ValidationError.from_exception_data(cls.__name__, errors)

    @model_validator(mode="before")
    @classmethod
    def _mark_corpus(cls, data: Any) -> Any:
        # datasets: comes from pretraining_dataset: even an invalid one (then no second error)
        if (
            isinstance(data, dict)
            and data.get("pretraining_dataset")
            and data.get("datasets") is None
        ):
            data = {**data, "datasets": _FROM_CORPUS}
        return data

    @field_validator("datasets", mode="before")
    @classmethod
    def _datasets_or_pretraining(cls, value: Any, info: ValidationInfo) -> Any:
        corpus = info.data.get("pretraining_dataset")
        if value is _FROM_CORPUS and not corpus:
            return []  # pretraining_dataset's own errors say what is wrong
        if value is _FROM_CORPUS:
            value = None
        if corpus:  # Axolotl trains on pretraining_dataset: it is the recipe's datasets
            derived = [entry.model_dump(exclude_unset=True) | {"type": entry.type}
                       for entry in corpus]  # fmt: skip
            if value is not None and not _same_entries(value, derived):
                raise ValueError("give datasets or pretraining_dataset, not both")
            return derived
        if value is None:
            raise ValueError("required key is missing")
        if isinstance(value, list) and not value:
            raise ValueError("needs at least one dataset")
        return value

    @field_validator("val_set_size")
    @classmethod
    def _fraction_or_rows(cls, value: float, info: ValidationInfo) -> float:
        if value >= 1 and value != int(value):
            raise ValueError(
                f"{value:g} is neither a fraction in [0, 1) nor a whole number of rows; "
                f"write e.g. 0.1 for 10% or {round(value)} for {round(value)} rows"
            )
        if value and _streams(info.data):
            raise ValueError(
                "streamed rows cannot be held out; give test_datasets for evaluation instead"
            )
        return value

    @field_validator("dataset_exact_deduplication")
    @classmethod
    def _not_streaming(cls, value: bool, info: ValidationInfo) -> bool:
        if value and _streams(info.data):
            raise ValueError("is not available for streamed datasets (as in Axolotl)")
        return value

    # `chat_template` is a model key (schema/model.py); its names are checked here, beside
    # the templates they name, so that a typo is one error line of `recipes validate`.
    @field_validator("chat_template", check_fields=False)
    @classmethod
    def _known_chat_template(cls, value: str | None, info: ValidationInfo) -> str | None:
        check_chat_template_choice(value)
        check_jinja_pair(value, info.data.get("chat_template_jinja"))
        return value


_FROM_CORPUS = "(from pretraining_dataset)"
_NEEDS_MAX_STEPS = (
    "needs max_steps: streamed rows have no length, so the trainer cannot count epochs "
    "(as in Axolotl and transformers); set max_steps: N"
)


def _streaming_key(data: dict[str, Any]) -> str | None:
    """The key that makes a raw recipe stream (`streaming`, or `pretraining_dataset`)."""
    if data.get("streaming") not in (None, False):
        return "streaming"
    if data.get("streaming") is None and data.get("pretraining_dataset"):
        return "pretraining_dataset"
    return None


def _streams(data: dict[str, Any]) -> bool:
    streaming = data.get("streaming")
    return bool(streaming or (streaming is None and data.get("pretraining_dataset")))


def _same_entries(given: Any, derived: list[dict[str, Any]]) -> bool:
    """Whether `datasets:` says what `pretraining_dataset:` says (a resolved recipe.yaml
    carries both)."""
    try:
        return [DatasetSection.model_validate(e) for e in given] == [
            DatasetSection.model_validate(e) for e in derived
        ]
    except (TypeError, ValueError):  # malformed entries: they differ
        return False
