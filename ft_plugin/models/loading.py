"""The run's model: attention implementation, config overrides, model class, the weights
(or fresh ones), and embeddings resized for added tokens.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ft_plugin.errors import UserError

from .kernels import kernel_plugin_notes
from .notes import note
from .resolution import ResolvedModel
from .tokenizer import NEW_TOKEN_IDS, load_tokenizer, new_token_ids

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

    from ft_plugin.config import Recipe

FLASH_NAMES = ("flash_attention_4", "flash_attention_torch", "varlen")  # Axolotl's flash family


def choose_attention(recipe: Recipe) -> str | None:
    """The attention kernel for training ``recipe``; None leaves the choice to transformers.

    Packed rows need attention that stays inside each row without a quadratic mask over
    the whole micro-batch: flash-attn's varlen kernel on a CUDA GPU where it is installed,
    else ``sdpa_packed`` (ft_plugin.speed.packed_attention). Axolotl's other kernel names run as
    ``auto``, its flash ones as flash_attention_2 where flash-attn is installed (a Hub
    kernel is never downloaded: it would run code from the Hub).
    """
    import importlib.util

    import torch

    from ft_plugin.config.schema.model import ATTENTION_KERNELS

    flash = torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None
    choice = recipe.attn_implementation
    if choice not in ATTENTION_KERNELS:
        flash_family = choice in FLASH_NAMES or "flash" in choice.rsplit("/", 1)[-1]
        choice = "flash_attention_2" if flash and flash_family else "auto"
    elif choice.startswith("flash_attention") and not flash:  # as Axolotl's examples ask
        choice = "auto"  # flash-attn needs a CUDA GPU and its package: load_model says so
    if choice == "auto" and recipe.sample_packing:
        choice = "flash_attention_2" if flash else "sdpa_packed"
    if choice == "sdpa_packed":
        from ft_plugin.speed.packed_attention import register_packed_attention

        register_packed_attention()
    return None if choice == "auto" else choice


def base_config(recipe: Recipe, resolved: ResolvedModel) -> PretrainedConfig:
    """The base model's config, with the recipe's `model_config` overrides and
    `rope_scaling` applied (Axolotl sets each override as an attribute, before loading)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        resolved.path, revision=resolved.revision, trust_remote_code=recipe.trust_remote_code
    )
    apply_config_overrides(config, recipe.overrides_of_model_config or {})
    if recipe.rope_scaling:
        config.rope_scaling = dict(recipe.rope_scaling)
    return config


def apply_config_overrides(config: PretrainedConfig, overrides: dict[str, Any]) -> None:
    """Set each `model_config` entry on ``config``; a mapping given for a sub-config
    (``text_config``) sets that sub-config's attributes instead of replacing it.

    Example:
        >>> from transformers import LlamaConfig
        >>> config = LlamaConfig()
        >>> apply_config_overrides(config, {"rope_theta": 1e6, "output_router_logits": True})
        >>> config.output_router_logits
        True
    """
    from transformers import PretrainedConfig

    from ft_plugin.config.schema.model import code_config_keys

    if code := code_config_keys(overrides):  # the schema refuses them; never load code here
        raise UserError(f"model_config: {', '.join(code)} would load code; remove it")
    for key, value in overrides.items():
        current = getattr(config, key, None)
        if isinstance(current, PretrainedConfig) and isinstance(value, dict):
            apply_config_overrides(current, value)
        else:
            setattr(config, key, value)


def model_class_for(recipe: Recipe, config: PretrainedConfig) -> tuple[Any, str | None]:
    """The class `model_type` names for this base, and a line when it cannot be used.

    Only causal-LM classes of transformers are looked up, by name in transformers' own
    table (nothing else is imported). A class made for another architecture than the
    base's config (Axolotl's Mistral example run on a Llama base) loads the base as its
    own class instead.

    Example (usage, not run as a doctest: it needs a model)::

        model_class_for(recipe, base_config(recipe, resolved))[0].__name__
    """
    import transformers
    from transformers import AutoModelForCausalLM
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    name = recipe.model_class_name
    if name == "AutoModelForCausalLM":
        return AutoModelForCausalLM, None
    named = getattr(transformers, name)
    made_for = named.config_class.model_type
    own = MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(config.model_type, "AutoModelForCausalLM")
    if name not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values():
        return AutoModelForCausalLM, (
            f"model_type: {name} is not a causal-LM class of transformers (a vision-language "
            f"one): the text model of base_model {recipe.base_model} loads as {own}"
        )
    if made_for == config.model_type:
        return named, None
    return AutoModelForCausalLM, (
        f"model_type: {name} is made for {made_for} models and base_model "
        f"{recipe.base_model} is {config.model_type}: it loads as {own}"
    )


def packing_fallback(recipe: Recipe, resolved: ResolvedModel) -> str | None:
    """The line to print when ``recipe`` packs rows (`sample_packing`) and its base model
    cannot keep packed rows apart; None when it can, or when nothing is packed.

    The caller then trains with ``sample_packing`` off (padded batches), e.g.::

        if line := models.packing_fallback(recipe, base):
            print(f"ft-plugin: {line}", file=sys.stderr)
            recipe = recipe.model_copy(update={"sample_packing": False})
    """
    from ft_plugin.speed.packed_attention import packing_problem

    if not recipe.sample_packing:
        return None
    config = base_config(recipe, resolved)
    problem = packing_problem(config, _concrete_class(recipe, config), choose_attention(recipe))
    if problem is None:
        return None
    return (
        f"sample_packing: off for {recipe.base_model} ({config.model_type}): {problem}; "
        "it trains on padded batches (the same rows per step)"
    )


def _concrete_class(recipe: Recipe, config: PretrainedConfig) -> Any | None:
    """The model class that will load (AutoModelForCausalLM resolved), or None if unknown."""
    from transformers import AutoModelForCausalLM

    model_class, _ = model_class_for(recipe, config)
    if model_class is AutoModelForCausalLM:
        return AutoModelForCausalLM._model_mapping.get(type(config), None)
    return model_class


def load_model(
    recipe: Recipe,
    resolved: ResolvedModel,
    *,
    dtype: torch.dtype,
    quantization_config: Any | None = None,
) -> PreTrainedModel:
    """Load the base model for training in ``dtype``, quantized when the method asks.

    It loads with the class `model_type` names; its embeddings fit the tokenizer the recipe
    asks for (`tokens`, `special_tokens`, `eot_tokens`, …: the new rows are kept as
    ``NEW_TOKEN_IDS``); the kernels `plugins:` names apply where they can.
    """
    from ft_plugin.config.schema.model import ATTENTION_KERNELS
    from ft_plugin.speed.packed_attention import packing_problem

    config = base_config(recipe, resolved)
    model_class, mismatch = model_class_for(recipe, config)
    if mismatch:
        note(mismatch)
    kwargs: dict[str, Any] = {
        "revision": resolved.revision,
        "trust_remote_code": recipe.trust_remote_code,
        "dtype": dtype,
        "use_safetensors": True,
        "config": config,
    }
    attention = choose_attention(recipe)
    if recipe.attn_implementation not in ATTENTION_KERNELS:
        note(f"attn_implementation: {recipe.attn_implementation} is not available in ft-plugin: "
             f"{attention or 'sdpa'} runs instead")  # fmt: skip
    elif recipe.attn_implementation.startswith("flash") and attention != recipe.attn_implementation:
        note(f"attn_implementation: {recipe.attn_implementation} needs a CUDA GPU and the "
             f"flash-attn package: {attention or 'sdpa'} runs instead")  # fmt: skip
    if attention:
        problem = packing_problem(config, _concrete_class(recipe, config), attention)
        if problem is None:
            kwargs["attn_implementation"] = attention
        else:  # packing_fallback should have turned packing off; never fail the load on it
            note(f"attn_implementation: {attention} cannot serve {config.model_type}: {problem}; "
                 "it loads with transformers' default attention")  # fmt: skip
    if quantization_config is not None:
        kwargs["quantization_config"] = quantization_config
    if recipe.reinit_weights:
        model = fresh_model(model_class, kwargs, recipe)
    else:
        try:
            model = model_class.from_pretrained(resolved.path, **kwargs)
        except OSError as exc:
            raise UserError(
                f"base_model: cannot load {resolved.path}: {str(exc).splitlines()[0]}"
            ) from None
    if recipe.token_changes():
        fit_embeddings(model, load_tokenizer(recipe, resolved, quiet=True), recipe)
    for line in kernel_plugin_notes(recipe, model):
        note(line)
    return model


def fresh_model(model_class: Any, kwargs: dict[str, Any], recipe: Recipe) -> PreTrainedModel:
    """`reinit_weights: true`: the base's architecture (its config, overrides applied) with
    randomly initialised weights, as Axolotl's ``from_config`` load; no weights are read.

    Example (usage, not run as a doctest: it needs a model)::

        fresh_model(AutoModelForCausalLM, {"config": config, "dtype": torch.float32}, recipe)
    """
    from transformers import AutoModelForCausalLM

    if kwargs.get("quantization_config") is not None:  # the schema refuses it; never quietly
        raise UserError("reinit_weights: a randomly initialised model cannot load quantized")
    settings = {key: kwargs[key] for key in ("dtype", "attn_implementation") if key in kwargs}
    note(f"reinit_weights: {recipe.base_model}'s architecture with random weights (its "
         "pretrained weights are not loaded)")  # fmt: skip
    if model_class is AutoModelForCausalLM:
        return model_class.from_config(
            kwargs["config"], trust_remote_code=recipe.trust_remote_code, **settings
        )
    return model_class._from_config(kwargs["config"], **settings)


def fit_embeddings(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, recipe: Recipe
) -> None:
    """Resize the embeddings to the tokenizer (Axolotl's rules), point the model's special
    token ids at the tokenizer's, and make end-of-turn tokens stop generation.

    Example (usage, not run as a doctest: it needs a model)::

        fit_embeddings(model, load_tokenizer(recipe, resolved, quiet=True), recipe)
        model.get_input_embeddings().num_embeddings >= len(tokenizer)  # True
    """
    rows = len(tokenizer)
    if recipe.resize_token_embeddings_to_32x:
        rows = math.ceil(rows / 32) * 32
    current = model.get_input_embeddings().num_embeddings
    if current < rows or (current > rows and recipe.shrink_embeddings):
        model.resize_token_embeddings(rows, mean_resizing=recipe.mean_resizing_embeddings)
    config, generation = model.config.get_text_config(), model.generation_config
    special = recipe.special_tokens
    for name in ("bos", "eos", "pad"):
        if special is not None and getattr(special, f"{name}_token"):
            token_id = getattr(tokenizer, f"{name}_token_id")
            setattr(config, f"{name}_token_id", token_id)
            if generation is not None:
                setattr(generation, f"{name}_token_id", token_id)
    ends = [tokenizer.convert_tokens_to_ids(token) for token in recipe.eot_tokens or []]
    if ends and generation is not None:
        current_ends = generation.eos_token_id
        if current_ends is None:
            current_ends = tokenizer.eos_token_id
        listed = current_ends if isinstance(current_ends, list) else [current_ends]
        generation.eos_token_id = list(dict.fromkeys([*listed, *ends]))
    setattr(model, NEW_TOKEN_IDS, new_token_ids(tokenizer))
