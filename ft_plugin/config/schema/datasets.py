"""Recipe keys of one dataset entry (Axolotl names): where its rows come from, how they are
read, and how chat rows become training text. The recipe's data keys around the entries
(mixing, caching, streaming, the eval split) are `data_loading.py`'s."""

from __future__ import annotations

import difflib
import re
from typing import Any, Literal

from pydantic import (
    Field,
    ModelWrapValidatorHandler,
    PrivateAttr,
    field_validator,
    model_validator,
)

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
    field_chosen: str | None = Field(
        None, description="Preference rows (`chat_template.*`): the chosen answer's column "
        "(default `chosen`): a string, a message, or a conversation whose last turn counts."
    )  # fmt: skip
    field_rejected: str | None = Field(
        None, description="Preference rows (`chat_template.*`): the rejected answer's column "
        "(default `rejected`)."
    )  # fmt: skip
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
