"""Recipe keys about the base model and tokenizer (Axolotl names)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    AliasChoices,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from .base import Section
from .plugins import KernelPluginsSection

EMBEDDED_DEFAULT = "embedded:smollm2-135m-instruct"
CAUSAL_LM_AUTO_CLASS = "AutoModelForCausalLM"
TOKENIZER_AUTO_CLASS = "AutoTokenizer"
# Axolotl's spellings of one key (its remapped names), ours first: the resolved recipe writes it.
BASE_REVISION_NAMES = ("base_model_revision", "revision_of_model", "model_revision")
MODEL_CONFIG_NAMES = ("overrides_of_model_config", "model_config")
# Config attributes that make transformers import a repo's Python code.
CODE_CONFIG_KEYS = ("auto_map", "trust_remote_code")
# transformers' BitsAndBytesConfig arguments (a test checks them against its signature);
# load_in_4bit / load_in_8bit have their own recipe keys.
BNB_CONFIG_KEYS = ("llm_int8_threshold", "llm_int8_skip_modules",
                   "llm_int8_enable_fp32_cpu_offload", "llm_int8_has_fp16_weight",
                   "bnb_4bit_compute_dtype", "bnb_4bit_quant_type", "bnb_4bit_use_double_quant",
                   "bnb_4bit_quant_storage")  # fmt: skip
BNB_OWN_KEYS = ("load_in_4bit", "load_in_8bit")
# Methods whose result holds every weight: the only ones that keep what reinit_weights trains.


def code_config_keys(overrides: Any, at: str = "") -> list[str]:
    """The keys of a `model_config` mapping (at any depth) that would load code.

    Example:
        >>> code_config_keys({"rope_theta": 1e6, "text_config": {"auto_map": {}}})
        ['text_config.auto_map']
    """
    found = []
    for key, value in (overrides or {}).items() if isinstance(overrides, dict) else ():
        if key in CODE_CONFIG_KEYS:
            found.append(f"{at}{key}")
        found += code_config_keys(value, f"{at}{key}.")
    return found


def check_bnb_config_kwargs(kwargs: dict[str, Any] | None) -> dict[str, Any] | None:
    """`bnb_config_kwargs` when every key is a BitsAndBytesConfig argument; else ValueError
    naming the others."""
    own = [key for key in kwargs or {} if key in BNB_OWN_KEYS]
    unknown = [key for key in kwargs or {} if key not in (*BNB_CONFIG_KEYS, *BNB_OWN_KEYS)]
    problems = [f"{', '.join(unknown)}: not BitsAndBytesConfig arguments; it takes "
                f"{', '.join(BNB_CONFIG_KEYS)}"] if unknown else []  # fmt: skip
    if own:
        problems.append(f"{', '.join(own)}: a recipe key of its own (write load_in_4bit: true "
                        "at the top level), not a bnb_config_kwargs entry")  # fmt: skip
    if problems:
        raise ValueError("; ".join(problems))
    return kwargs


def validated_with_clashes(name: str, data: Any, handler: ModelWrapValidatorHandler[Any],
                           clashes: list[tuple[str, str]]) -> Any:  # fmt: skip
    """``handler(data)``, or one error per ``(key, why)`` clash at that key, reported beside
    every other problem of the recipe (a model validator's ValueError names no key)."""
    if not clashes:
        return handler(data)
    errors: list[Any] = []
    try:
        handler({key: value for key, value in data.items() if key not in dict(clashes)})
    except ValidationError as exc:
        errors = exc.errors()
    for key, message in clashes:
        error = PydanticCustomError("value_error", "{error}", {"error": message})
        errors.append({"type": error, "loc": (key,), "input": data[key]})
    raise ValidationError.from_exception_data(name, errors)


def model_key_clashes(data: dict[str, Any]) -> list[tuple[str, str]]:
    """``(key, why)`` for each model key of a raw recipe that contradicts another: two
    spellings of the base's revision with different values, fresh weights under a PEFT
    adapter (which saves only itself; a quantized base needs one too), RoPE scaling given
    twice.

    Example:
        >>> model_key_clashes({"base_model_revision": "main", "model_revision": "v2"})
        [('model_revision', 'v2 contradicts base_model_revision: main; both name the revision of base_model: give one')]
    """
    clashes = []
    given = [(name, data[name]) for name in BASE_REVISION_NAMES if data.get(name) is not None]
    clashes += [(name, f"{value} contradicts {given[0][0]}: {given[0][1]}; both name the "
                       "revision of base_model: give one")
                for name, value in given[1:] if value != given[0][1]]  # fmt: skip
    overrides = next((data[k] for k in MODEL_CONFIG_NAMES if isinstance(data.get(k), dict)), {})
    rope = overrides.get("rope_scaling")
    if data.get("rope_scaling") is not None and rope is not None and rope != data["rope_scaling"]:
        clashes.append(("rope_scaling", "differs from model_config.rope_scaling; keep one"))
    return clashes


def _transformers_names() -> set[str]:
    """The public names of transformers (its lazy module lists them without importing torch)."""
    import transformers

    return set(dir(transformers))


def check_model_class(name: str) -> str:
    """``name`` when it can name a causal-LM class of transformers (a vision-language
    ``*ForConditionalGeneration`` class trains its text model); else ValueError saying why."""
    loads = name.endswith(("ForCausalLM", "ForConditionalGeneration"))
    if name == CAUSAL_LM_AUTO_CLASS or (loads and name in _transformers_names()):
        return name
    what = (
        "not a class of transformers"
        if loads
        else "not a causal language model class of transformers; ft-plugin trains causal LMs"
    )
    raise ValueError(
        f"{name} is {what}: write {CAUSAL_LM_AUTO_CLASS} or a *ForCausalLM class such as LlamaForCausalLM"
    )


def check_tokenizer_class(name: str) -> str:
    """``name`` when it is a tokenizer class of transformers; else ValueError."""
    if name == TOKENIZER_AUTO_CLASS or (
        name.endswith(("Tokenizer", "TokenizerFast", "TokenizersBackend"))
        and name in _transformers_names()
    ):
        return name
    raise ValueError(
        f"{name} is not a tokenizer class of transformers: write {TOKENIZER_AUTO_CLASS} "
        "(the class the model repo names) or one such as LlamaTokenizer"
    )


ATTENTION_KERNELS = (
    "auto",
    "eager",
    "sdpa",
    "sdpa_packed",
    "flash_attention_2",
    "flash_attention_3",
)
# Axolotl's attention names that ft-plugin does not run as such (enums.CANONICAL_ATTN_IMPLS).
AXOLOTL_ATTENTION = ("flash_attention_4", "flash_attention_torch", "flex_attention", "varlen",
                     "xformers", "sage", "fp8")  # fmt: skip


def check_attention(name: str) -> str:
    """``name`` when it is an attention kernel of ours or of Axolotl (a Hub kernel path
    ``org/name`` included); else ValueError listing them."""
    if name in ATTENTION_KERNELS or name in AXOLOTL_ATTENTION or "/" in name:
        return name
    raise ValueError(
        f"{name!r} is not an attention kernel: write one of {', '.join(ATTENTION_KERNELS)}"
    )


class SpecialTokens(Section):
    """Axolotl's `special_tokens:` (set on the tokenizer, added to the vocabulary when new)."""

    bos_token: str | None = Field(None, description="Beginning-of-sequence token.")
    eos_token: str | None = Field(None, description="End-of-sequence token.")
    pad_token: str | None = Field(None, description="Padding token.")
    unk_token: str | None = Field(None, description="Unknown-token token.")
    additional_special_tokens: list[str] | None = Field(
        None, description="More special tokens (never split, skipped when decoding)."
    )


class ModelSection(KernelPluginsSection):
    base_model: str = Field(
        EMBEDDED_DEFAULT,
        description="Base model: a Hub id (`meta-llama/Llama-3.1-8B`), a local folder, or "
        "`embedded:smollm2-135m-instruct` (ships with ft-plugin, no download).",
    )
    base_model_revision: str | None = Field(
        None,
        validation_alias=AliasChoices(*BASE_REVISION_NAMES),
        description="Hub revision (branch, tag or commit) of `base_model`. Axolotl's "
        "`model_revision` and `revision_of_model` are the same key (the resolved recipe writes "
        "`base_model_revision`).",
    )
    overrides_of_model_config: dict[str, Any] | None = Field(
        None,
        validation_alias=AliasChoices(*MODEL_CONFIG_NAMES),
        description="Axolotl's `model_config:` (also `overrides_of_model_config:`): attributes "
        "set on the base model's config before the weights load, e.g. `{output_router_logits: "
        "true}` or `{rope_theta: 1000000}`; a mapping under a sub-config (`text_config: {…}`) "
        "sets that sub-config's attributes. Keys that would load code (auto_map, "
        "trust_remote_code) are refused.",
    )
    reinit_weights: bool = Field(
        False,
        description="Train from random initialisation: the base model's architecture (its "
        "config) with fresh weights, as Axolotl's `reinit_weights: true`; the base's "
        "tokenizer is used as it is. Trains with adapter: full (the default with this key) or "
        "freeze, which save every weight; not with a quantized base.",
    )
    tokenizer_config: str | None = Field(
        None, description="Tokenizer to use instead of the base model's own."
    )
    trust_remote_code: bool = Field(
        False, description="Run model code from the Hub repo. Off unless you trust the repo."
    )
    chat_template: str | None = Field(
        None,
        description="Chat template: `tokenizer_default` (the model's own), `chatml`, or a Jinja "
        "template string. Default: the model's own, ChatML when it has none.",
    )
    model_type: str | None = Field(
        None,
        description="transformers class to load the base with: `AutoModelForCausalLM` or a "
        "`*ForCausalLM` class (`LlamaForCausalLM`). A class made for another architecture than "
        "the base's config names, or a vision-language `*ForConditionalGeneration` class, loads "
        "the base's own causal-LM class instead, with one line saying so.",
    )
    type_of_model: str | None = Field(
        None, description="Axolotl's internal spelling of `model_type` (the same)."
    )
    tokenizer_type: str | None = Field(
        None,
        description="transformers tokenizer class: `AutoTokenizer` or the class the tokenizer was "
        "saved as (`LlamaTokenizer`); another class would tokenize differently, so the "
        "tokenizer's own class loads instead, with one line saying so.",
    )
    tokenizer_use_fast: bool | None = Field(
        None,
        description="`use_fast` for the tokenizer. transformers 5 has one (fast) tokenizer per "
        "model: `false` prints one line and loads that one.",
    )
    tokenizer_legacy: bool | None = Field(
        None,
        description="`legacy` for the tokenizer (Llama / T5 SentencePiece-style tokenizers: how "
        "text after a special token is split).",
    )
    special_tokens: SpecialTokens | None = Field(
        None,
        description="Special tokens to set on the tokenizer, e.g. `{pad_token: '<|pad|>'}`; a "
        "token not in the vocabulary is added (embeddings grow, the new rows train).",
    )
    tokens: list[str] | None = Field(
        None,
        description="New tokens to add to the tokenizer, e.g. `['<|tool|>']`: the embeddings grow "
        "and the new rows train (LoRA: PEFT `trainable_token_indices`).",
    )
    eot_tokens: list[str] | None = Field(
        None,
        description="End-of-turn tokens, e.g. `['<|im_end|>']`: added as special tokens when new, "
        "and generation stops at each of them as at EOS. The turn end the chat template renders "
        "after an answer carries loss.",
    )
    added_tokens_overrides: dict[int, str] | None = Field(
        None,
        description="Rename reserved added tokens, `{token_id: new_text}` (only tokens in the "
        "tokenizer's added_tokens); their embedding rows train like new tokens.",
    )
    resize_token_embeddings_to_32x: bool = Field(
        False, description="Grow the embeddings to a multiple of 32 rows when tokens are added."
    )
    mean_resizing_embeddings: bool = Field(
        False,
        description="Start new token embeddings at the mean of the others (transformers' "
        "`mean_resizing`); else at the model's random initialisation, as Axolotl does.",
    )
    shrink_embeddings: bool = Field(
        False, description="Shrink the embeddings to the tokenizer's size when they are larger."
    )
    load_in_4bit: bool = Field(
        False, description="Load the base in 4-bit NF4 (bitsandbytes); QLoRA."
    )
    load_in_8bit: bool = Field(False, description="Load the base in 8-bit (bitsandbytes).")
    bnb_4bit_quant_type: Literal["nf4", "fp4"] = Field("nf4", description="4-bit data type.")
    bnb_4bit_use_double_quant: bool = Field(
        True, description="Quantize the quantization constants too."
    )
    bnb_4bit_compute_dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="Matmul dtype for 4-bit layers; `auto` follows the training precision."
    )
    bnb_config_kwargs: dict[str, Any] | None = Field(
        None,
        description="Axolotl's extra BitsAndBytesConfig arguments for the quantized base "
        "(load_in_4bit / load_in_8bit), e.g. `{bnb_4bit_quant_storage: bfloat16, "
        "llm_int8_threshold: 6.0}`: merged over the config ft-plugin builds (they win over "
        "bnb_4bit_quant_type, bnb_4bit_use_double_quant and bnb_4bit_compute_dtype). Keys: "
        + ", ".join(BNB_CONFIG_KEYS)
        + ".",
    )
    attn_implementation: str = Field(
        "auto",
        description="Attention kernel: auto, eager, sdpa, sdpa_packed, flash_attention_2, "
        "flash_attention_3. `auto` is SDPA, and with sample_packing flash_attention_2 on a CUDA "
        "GPU with flash-attn installed, else `sdpa_packed` (SDPA per packed row). Axolotl's "
        "other names (flash_attention_4, flex_attention, xformers, sage, a Hub kernel, …) are "
        "accepted and run as `auto` (the flash ones as flash_attention_2 where it is installed), "
        "with one line saying so; a Hub kernel's code is never downloaded.",
    )
    rope_scaling: dict[str, Any] | None = Field(
        None,
        description="RoPE scaling for contexts past the model's native length, e.g. "
        "`{rope_type: linear, factor: 2.0}`. Costs quality; train on long text to recover.",
    )

    @field_validator("model_type", "type_of_model")
    @classmethod
    def _causal_lm_class(cls, value: str | None) -> str | None:
        return check_model_class(value) if value else value

    @field_validator("overrides_of_model_config")
    @classmethod
    def _no_code_in_config(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if code := code_config_keys(value):
            raise ValueError(f"{', '.join(code)}: would load Python code from a model repo; "
                             "remove it (set trust_remote_code: true in your local recipe to "
                             "run a repo's own code)")  # fmt: skip
        return value

    @field_validator("bnb_config_kwargs")
    @classmethod
    def _bnb_arguments(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return check_bnb_config_kwargs(value)

    @model_validator(mode="wrap")
    @classmethod
    def _keys_agree(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        if not isinstance(data, dict):
            return handler(data)
        if data.get("reinit_weights") is True and data.get("adapter") is None:
            data = {**data, "adapter": "full"}  # no adapter asked: every weight trains (Axolotl)
        clashes = model_key_clashes(data)
        # the same revision under two spellings is one value: pydantic reads one, the other
        # would be an unknown key
        given = [name for name in BASE_REVISION_NAMES if data.get(name) is not None]
        if len(given) > 1 and not clashes:
            data = {key: value for key, value in data.items() if key not in given[1:]}
        return validated_with_clashes(cls.__name__, data, handler, clashes)

    @field_validator("attn_implementation")
    @classmethod
    def _attention(cls, value: str) -> str:
        return check_attention(value)

    @model_validator(mode="before")
    @classmethod
    def _tokens_mapping(cls, data: Any) -> Any:
        # Old Axolotl configs wrote special tokens under `tokens:` as a mapping
        # ({bos_token: "<s>"}); `tokens:` is a list of new tokens now: move them.
        if isinstance(data, dict) and isinstance(data.get("tokens"), dict):
            data = dict(data)
            special = dict(data.get("special_tokens") or {})
            data["special_tokens"] = {**data.pop("tokens"), **special}
        return data

    @field_validator("tokenizer_type")
    @classmethod
    def _tokenizer_class(cls, value: str | None) -> str | None:
        return check_tokenizer_class(value) if value else value

    @model_validator(mode="after")
    def _one_model_class(self) -> ModelSection:
        if self.model_type and self.type_of_model and self.model_type != self.type_of_model:
            raise ValueError("model_type and type_of_model are the same key: give one")
        return self

    @property
    def model_class_name(self) -> str:
        """The transformers class the base loads with (`model_type` / `type_of_model`)."""
        return self.model_type or self.type_of_model or CAUSAL_LM_AUTO_CLASS

    def token_changes(self) -> bool:
        """True when the recipe adds, renames or resizes tokens (the embeddings may change)."""
        return bool(
            self.special_tokens or self.tokens or self.eot_tokens or self.added_tokens_overrides
            or self.tokenizer_config or self.resize_token_embeddings_to_32x
            or self.shrink_embeddings
        )  # fmt: skip
