"""Recipe keys about training data (Axolotl names): where rows come from, how they are
read, mixed, cached, streamed, and how chat rows become training text."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .base import Section

BUILTIN_DATASET_TYPES = ("alpaca", "chat_template", "completion", "pretrain")
RAW_TEXT_TYPES = ("completion", "pretrain")

# Axolotl's `chat_template:` names: the Jinja files of ft_plugin/data/chat_templates
# (copied from Axolotl 0.21.0; a test checks this list against the folder).
CHAT_TEMPLATE_NAMES = (
    "alpaca", "aya", "chatml", "cohere", "command_a", "command_a_rag", "command_a_tool_use",
    "deepseek_v2", "deepseek_v3", "exaone", "exaone4", "falcon_h1", "gemma", "gemma3", "gemma3n",
    "gemma4", "gemma4_unified", "jamba", "llama3", "llama3_2_vision", "llama4", "llava",
    "metharme", "mistral_v1", "mistral_v2v3", "mistral_v3_tekken", "mistral_v7_tekken",
    "nemotron_h", "phi_3", "phi_35", "phi_4", "pixtral", "qwen2_vl", "qwen3", "qwen3_5", "qwen_25",
)  # fmt: skip
TEMPLATE_CHOICES = ("tokenizer_default", "jinja", *CHAT_TEMPLATE_NAMES)
FALLBACK_PREFIX = "tokenizer_default_fallback_"
EOS_CHOICES = Literal["all", "turn", "last", "none"]
# Keys only the chat_template row type reads (we render and mask its rows per turn).
CHAT_TYPE_KEYS = ("roles_to_train", "train_on_eos", "train_on_eot", "chat_template",
                  "chat_template_jinja")  # fmt: skip
# Keys that read chat rows: chat_template datasets, and domain templates fed chat rows.
CHAT_ROW_KEYS = ("roles", "drop_system_message", "message_field_role", "message_field_content",
                 "field_thinking", "template_thinking_key")  # fmt: skip
DEFAULT_THINKING_KEY = "reasoning_content"  # Axolotl's default for both thinking keys
# Axolotl's `TYPE:STYLE` (prompt style of its instruction prompters, prompters.PromptStyle),
# for the types of ours that Axolotl renders with such a prompter.
PROMPT_STYLES = ("instruct", "chat", "chatml", "phi")
STYLED_TYPES = ("alpaca",)
# apply_chat_template's own arguments (and the template's `messages`): not template variables.
CHAT_TEMPLATE_CALL_ARGUMENTS = (
    "conversation", "messages", "chat_template", "add_generation_prompt", "continue_final_message",
    "tokenize", "sanitize_control_tokens", "padding", "truncation", "max_length",
    "return_tensors", "return_dict", "return_assistant_tokens_mask", "tokenizer_kwargs",
)  # fmt: skip


def split_prompt_style(kind: str) -> tuple[str, str | None]:
    """Axolotl's ``TYPE:STYLE`` as ``(TYPE, STYLE)`` for a styled type and a known style;
    anything else as ``(kind, None)``.

    Example:
        >>> split_prompt_style("alpaca:chat"), split_prompt_style("alpaca:chatty")
        (('alpaca', 'chat'), ('alpaca:chatty', None))
    """
    base, _, style = kind.partition(":")
    if base in STYLED_TYPES and style in PROMPT_STYLES:
        return base, style
    return kind, None


# datasets' split syntax (datasets.arrow_reader): NAME, NAME[from:to] with optional %, joined by +.
_SPLIT_PART = r"[\w.-]+(\[(-?[\d_]+%?)?:(-?[\d_]+%?)?\])?(\((closest|pct1_dropremainder)\))?"
_SPLIT = re.compile(rf"^{_SPLIT_PART}(\s*\+\s*{_SPLIT_PART})*$")
_JINJA_MARKS = ("{{", "{%")


def check_chat_template_choice(value: str | None) -> str | None:
    """A `chat_template:` value: one of Axolotl's names, `tokenizer_default_fallback_NAME`,
    or (ours) a Jinja template string; anything else is a typo.

    Example:
        >>> check_chat_template_choice("llama_3")
        Traceback (most recent call last):
        ...
        ValueError: unknown chat template 'llama_3' (did you mean 'llama3'?); known: ...
    """
    if value is None or value in TEMPLATE_CHOICES or any(m in value for m in _JINJA_MARKS):
        return value
    if value.startswith(FALLBACK_PREFIX) and value[len(FALLBACK_PREFIX) :] in CHAT_TEMPLATE_NAMES:
        return value
    close = difflib.get_close_matches(value, TEMPLATE_CHOICES, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(
        f"unknown chat template {value!r}{hint}; known: {', '.join(TEMPLATE_CHOICES)}, "
        f"{FALLBACK_PREFIX}NAME, or a Jinja template in chat_template_jinja"
    )


def check_jinja_pair(choice: str | None, jinja: str | None) -> None:
    """`chat_template: jinja` needs `chat_template_jinja`, which no other name reads."""
    if choice == "jinja" and not jinja:
        raise ValueError("chat_template: jinja needs chat_template_jinja (a Jinja string or file)")
    if jinja and choice not in (None, "jinja"):
        raise ValueError(
            f"chat_template_jinja is read only with chat_template: jinja (or empty), not "
            f"{choice!r}; remove one of them"
        )


class DatasetSection(Section):
    """One entry of `datasets:` (or `test_datasets:`, `pretraining_dataset:`)."""

    path: str = Field(
        description="Where the rows are: a local file (jsonl, json, csv, tsv, txt, parquet, "
        "arrow), a local folder of such files or one saved with `datasets` (`save_to_disk`), a "
        "Hub dataset id (read with `datasets.load_dataset`, with `name`, `data_files`, "
        "`revision`), or `builtin:NAME` for a template's sample data."
    )
    encoding: str | None = Field(
        None,
        description="Text encoding of a local jsonl/json/csv/tsv/txt file (e.g. gb18030, utf-16, "
        "latin-1); default: detected, and confirmed on the whole file.",
    )
    type: str = Field(
        "alpaca",
        description="Row shape: `alpaca` (instruction/input/output), `chat_template` (messages, "
        "loss per turn as in Axolotl), `completion` / `pretrain` (raw text cut into "
        "`sequence_len` windows), or a domain template (`medical`, `legal`, …, a path or hf://).",
    )
    name: str | None = Field(None, description="Dataset configuration name (Hub datasets).")
    split: str = Field(
        "train",
        description="Split to read, in `datasets`' syntax: `train`, `train[:20%]`, "
        "`train[10:100]`, `train[-5%:]`, `train[:10%]+test[:10]`. A local file is one split "
        "whatever its name (the slice applies to its rows); a folder or Hub dataset has the "
        "splits `datasets` finds. With streaming: a row range from the start only.",
    )
    data_files: str | list[str] | None = Field(
        None, description="Files to read inside a Hub dataset repo or a local folder."
    )
    revision: str | None = Field(None, description="Hub revision of the dataset.")
    skip: int | None = Field(
        None, ge=0, description="Skip this many rows at the start (after `split`'s slice)."
    )
    weight: float = Field(1.0, gt=0, description="Mixing weight when several datasets are given.")
    field_instruction: str | None = Field(None, description="Column holding the instruction.")
    field_input: str | None = Field(None, description="Column holding the optional input/context.")
    field_output: str | None = Field(None, description="Column holding the answer.")
    field_system: str | None = Field(
        None,
        description="Column holding a per-row system prompt (chat_template: default `system`, "
        "added as the first turn when the messages have none).",
    )
    field_messages: str | None = Field(
        None, description="Column holding the chat messages list (default `messages`)."
    )
    field_text: str | None = Field(None, description="Column holding raw text (`completion`).")
    field: str | None = Field(
        None, description="Axolotl's name for the raw-text column of `completion` rows."
    )
    text_column: str | None = Field(
        None, description="Axolotl's name for the raw-text column of `pretrain` rows."
    )
    field_label: str | None = Field(None, description="Column holding the class label.")
    field_thinking: str | None = Field(
        None,
        description="chat rows: the message key holding a turn's reasoning trace (default "
        "`reasoning_content`); it reaches the chat template as `template_thinking_key` and, "
        "on trained turns, carries loss with the answer (gpt-oss, Qwen3 style).",
    )
    template_thinking_key: str | None = Field(
        None,
        description="chat rows: the message key the chat template reads the reasoning trace "
        "from (default `reasoning_content`; gpt-oss templates read `thinking`).",
    )
    message_property_mappings: dict[str, str] | None = Field(
        None,
        description="Message keys by what the template calls them, e.g. `{role: from, content: "
        "value}` (ShareGPT).",
    )
    message_field_role: str | None = Field(
        None, description="Old name of `message_property_mappings: {role: …}` (ShareGPT: from)."
    )
    message_field_content: str | None = Field(
        None,
        description="Old name of `message_property_mappings: {content: …}` (ShareGPT: value).",
    )
    roles: dict[str, list[str]] | None = Field(
        None,
        description="Role names of the rows mapped onto the template's, as `{user: [human], "
        "assistant: [gpt]}`; default: human/user → user, gpt/assistant → assistant, system, tool.",
    )
    roles_to_train: list[str] | None = Field(
        None,
        description="chat_template: the roles whose turns carry loss, every such turn and not "
        "only the last (default `[assistant]`); names are mapped through `roles`.",
    )
    train_on_eos: EOS_CHOICES | None = Field(
        None,
        description="chat_template: which end-of-sequence tokens carry loss: `turn` (default: "
        "the one after each trained turn), `all`, `last` (the conversation's last), `none`.",
    )
    train_on_eot: EOS_CHOICES | None = Field(
        None,
        description="chat_template: the same for end-of-turn tokens (`eot_tokens`); default: "
        "as `train_on_eos`.",
    )
    drop_system_message: bool | None = Field(
        None, description="Drop a conversation's first turn when it is a system turn."
    )
    chat_template: str | None = Field(
        None,
        description="This dataset's chat template (Axolotl's names, as the top-level "
        "`chat_template`); default: the recipe's.",
    )
    chat_template_jinja: str | None = Field(
        None,
        description="This dataset's Jinja chat template (a string or a file), with "
        "`chat_template: jinja` or none.",
    )
    chunk_overlap: int | None = Field(
        None,
        ge=0,
        description="`completion` / `pretrain`: long texts are cut into `sequence_len`-token "
        "windows that share this many tokens, instead of being truncated (default: 0 for "
        "`completion`; Axolotl's stride, min(256, (sequence_len - 1) // 2), for `pretrain`).",
    )
    clean: bool = Field(
        True,
        description="Domain templates: clean rows as the template says (normalise, strip markup, "
        "PII, duplicates) before training.",
    )
    max_rows: int | None = Field(
        None, ge=1, description="Use at most this many rows (after shuffling)."
    )

    _prompt_style: str | None = PrivateAttr(None)

    @model_validator(mode="wrap")
    @classmethod
    def _axolotl_prompt_style(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """`type: alpaca:chat` (Axolotl's prompt style) is `alpaca`; the style is kept for the
        data stage's note (its wording is not applied: the chat template renders the rows)."""
        style = None
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            base, style = split_prompt_style(data["type"])
            data = {**data, "type": base} if style else data
        section = handler(data)
        if style:
            section._prompt_style = style
        return section

    @property
    def prompt_style(self) -> str | None:
        """The Axolotl prompt style of `type: alpaca:STYLE`, None for a plain type."""
        return self._prompt_style

    @model_validator(mode="before")
    @classmethod
    def _legacy_message_fields(cls, data: Any) -> Any:
        """`message_field_role` / `_content` are Axolotl's old spelling of the mappings."""
        if not isinstance(data, dict):
            return data
        mappings = dict(data.get("message_property_mappings") or {})
        for key, prop in (("message_field_role", "role"), ("message_field_content", "content")):
            old = data.get(key)
            if old is None:
                continue
            if mappings.get(prop, old) != old:
                raise ValueError(
                    f"{key}: {old} conflicts with message_property_mappings.{prop}: "
                    f"{mappings[prop]}; keep message_property_mappings"
                )
            mappings[prop] = old
        if mappings:
            data = {**data, "message_property_mappings": mappings}
        return data

    @field_validator("split")
    @classmethod
    def _split_syntax(cls, value: str) -> str:
        if not _SPLIT.match(value.strip()):
            raise ValueError(
                f"{value!r} is not a split: write a name with an optional slice, e.g. train, "
                "train[:20%], train[10:100], train[-5%:]"
            )
        return value.strip()

    @field_validator("chat_template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        return check_chat_template_choice(value)

    @model_validator(mode="after")
    def _keys_fit_the_type(self) -> DatasetSection:
        check_jinja_pair(self.chat_template, self.chat_template_jinja)
        text_names = {k: getattr(self, k) for k in ("field_text", "field", "text_column")}
        if len({v for v in text_names.values() if v is not None}) > 1:
            named = ", ".join(f"{k}: {v}" for k, v in text_names.items() if v is not None)
            raise ValueError(f"{named} name different text columns; keep one")
        if self.type == "chat_template":
            return self
        chat_only = [k for k in CHAT_TYPE_KEYS if self._changed(k)]
        if self.type in ("alpaca", *RAW_TEXT_TYPES):
            chat_only += [k for k in CHAT_ROW_KEYS if self._changed(k)]
        if chat_only:
            raise ValueError(
                f"{', '.join(chat_only)}: read by type: chat_template rows only, not type: "
                f"{self.type}"
            )
        return self

    def _changed(self, key: str) -> bool:
        """Whether ``key`` differs from its default (a resolved recipe spells defaults out)."""
        default = type(self).model_fields[key].get_default(call_default_factory=True)
        return getattr(self, key) != default

    def text_field(self) -> str:
        """The raw-text column: `field_text`, `field` or `text_column`, else `text`."""
        return self.field_text or self.field or self.text_column or "text"

    def thinking_mapping(self) -> tuple[str, str]:
        """``(template key, message key)`` of the reasoning trace (Axolotl's defaults)."""
        return (self.template_thinking_key or DEFAULT_THINKING_KEY,
                self.field_thinking or DEFAULT_THINKING_KEY)  # fmt: skip


class PretrainingDatasetSection(DatasetSection):
    """One entry of `pretraining_dataset:` (Axolotl): raw text, streamed."""

    type: str = Field("pretrain", description="Row shape; `pretrain` (raw text) by default.")


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
