"""Before training starts: how many parameters a recipe trains, and about how much memory.

:func:`estimate_training` builds the base model's skeleton from its ``config.json`` on
PyTorch's meta device (shapes only, no weights read: a fraction of a second for the
embedded 135M model), applies the recipe's method as training does (``method.prepare``,
or ``method.start_from`` with ``lora_model_dir``) and counts with the
:func:`~ft_plugin.methods.base.count_parameters` that training reports. The parameter
counts are exact.

The memory is an estimate, a rough rule that errs high, not a measurement. MB here are
MiB, as ``peak_memory_mb`` in metrics.json, so the two compare. Three parts:

- weights: the frozen parameters at the dtype training loads them in (the frozen base
  in bf16/fp16 under adapters when training autocasts, else fp32; QLoRA's 4-bit linear
  weights at half a byte, its other weights fp32), plus autocast's half-precision copy
  of every fp32 weight it casts;
- optimizer: 16 bytes per trainable parameter (below);
- activations: what the backward keeps, from micro_batch_size x sequence_len x
  hidden_size x the layers the backward passes through (fewer with gradient
  checkpointing; rows are counted as full ``sequence_len`` rows, which packing and
  shorter rows undercut), plus the logits, micro_batch x sequence_len x vocab x 4 bytes
  (TRL's fused LM head scores in tiles, so training usually needs less than that).

It leaves out the CUDA context and allocator slack (on a GPU) and the Python process
itself (on a CPU).

Example (usage, not run as a doctest: it needs a model, files or the Hub)::

    from ft_plugin.config import load_recipe
    estimate_training(load_recipe("medical-lora").recipe).summary()
    # '4,884,480 trainable of 139,399,488 parameters (3.504%); memory ≈ 2,... MB (...)'
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ft_plugin import models, registry
from ft_plugin.utils.checkpointing import choose_gradient_checkpointing
from ft_plugin.utils.precision import choose_precision

from .base import FineTuningMethod, count_parameters

if TYPE_CHECKING:
    import torch
    from transformers import PretrainedConfig

    from ft_plugin.config import Recipe

MIB = 2**20
# AdamW in fp32 per trainable parameter: the fp32 weight itself (the master copy that
# steps), its fp32 gradient and the two fp32 moments: 4 + 4 + 4 + 4 bytes.
OPTIMIZER_BYTES_PER_TRAINABLE = 16
# Values the backward keeps per token, per decoder layer, in units of hidden_size: 17 for
# a GPT layer with a fused attention kernel (Korthikanti et al., 2022, "Reducing
# Activation Recomputation in Large Transformer Models": 34 bytes at 16 bits). Measured
# here with autograd's saved-tensor hooks on the embedded Llama: full fine-tuning 19,
# LoRA on every linear layer with dropout 24 (fp32) to 27 (bf16 autocast), IA3 16.
ACTIVATION_VALUES_PER_HIDDEN = 28
LOGIT_BYTES = 4  # the loss reads fp32 logits
AUTOCAST_COPY_BYTES = 2  # autocast keeps a bf16/fp16 copy of each fp32 weight it casts
# DoRA's weight norm keeps about two copies of each adapted weight for the backward
# (measured as above: 1.6 in fp32, 1.4 under bf16 autocast).
DORA_WEIGHT_COPIES = 2
QUANTIZED_BYTES = {"load_in_4bit": 0.5, "load_in_8bit": 1.0}  # quantization constants left out


@dataclass(frozen=True)
class TrainingEstimate:
    """Parameters a recipe trains (exact) and the memory training takes (estimated, MiB).

    Example:
        >>> estimate = TrainingEstimate(3_686_400, 138_201_408, 269.0, 56.2, 1811.1)
        >>> estimate.summary()
        '3,686,400 trainable of 138,201,408 parameters (2.667%); memory ≈ 2,136 MB (weights 269, optimizer 56, activations 1,811)'
    """

    trainable: int
    total: int
    weights_mb: float
    optimizer_mb: float  # gradients and AdamW state, with the fp32 trainable weights
    activations_mb: float  # decoder layers and logits for one micro-batch
    precision: str = "fp32"  # what training autocasts to: bf16, fp16 or fp32
    gradient_checkpointing: bool = False
    notes: tuple[str, ...] = ()

    @property
    def share(self) -> float:
        """Trainable parameters as a fraction of all parameters."""
        return self.trainable / self.total if self.total else 0.0

    @property
    def total_mb(self) -> float:
        return self.weights_mb + self.optimizer_mb + self.activations_mb

    def summary(self) -> str:
        return (
            f"{self.trainable:,} trainable of {self.total:,} parameters ({100 * self.share:.3f}%); "
            f"memory ≈ {self.total_mb:,.0f} MB (weights {self.weights_mb:,.0f}, "
            f"optimizer {self.optimizer_mb:,.0f}, activations {self.activations_mb:,.0f})"
        )


def estimate_training(recipe: Recipe) -> TrainingEstimate:
    """Count what ``recipe`` trains on a weightless model and estimate training memory.

    A base model that cannot be found raises the ``UserError`` training raises. A Hub
    model's config.json is all that is fetched, not its weights.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        estimate = estimate_training(load_recipe("medical-lora").recipe)
        estimate.trainable, estimate.total_mb
    """
    method = registry.load_method(recipe.adapter)
    config = _base_config(recipe)
    model = _prepared_skeleton(method, config, recipe)
    trainable, total = count_parameters(model)
    precision = choose_precision(recipe, method.uses_peft)  # the engine's rule
    half, base_bytes = precision.bf16 or precision.fp16, precision.load_dtype.itemsize
    checkpointing = choose_gradient_checkpointing(recipe, total)
    quantized = _quantization(recipe, method)
    weights = _weight_bytes(model, base_bytes, quantized)
    if half:  # the fp32 weights that autocast casts: the adapters, or all of a fp32 model
        weights += AUTOCAST_COPY_BYTES * (trainable if base_bytes < 4 else total)
    activations = _activation_bytes(recipe, model, config, 2 if half else 4, checkpointing)
    return TrainingEstimate(
        trainable=trainable,
        total=total,
        weights_mb=weights / MIB,
        optimizer_mb=OPTIMIZER_BYTES_PER_TRAINABLE * trainable / MIB,
        activations_mb=activations / MIB,
        precision=precision.label,
        gradient_checkpointing=checkpointing,
        notes=_notes(recipe, quantized, checkpointing),
    )


def _base_config(recipe: Recipe) -> PretrainedConfig:
    """The base model's config (`model_config` and ``rope_scaling`` applied as
    ``models.load_model`` does)."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(
        _config_folder(recipe.base_model, recipe.base_model_revision),
        trust_remote_code=recipe.trust_remote_code,
    )
    models.apply_config_overrides(config, recipe.overrides_of_model_config or {})
    if recipe.rope_scaling:
        config.rope_scaling = dict(recipe.rope_scaling)
    return config


def _config_folder(base_model: str, revision: str | None) -> str:
    """A folder with the base model's config.json: ``models.resolve_base_model`` (and its
    errors) for embedded and local models; for a Hub id, config.json only."""
    local = base_model.startswith((models.EMBEDDED_PREFIX, ".", "/", "~"))
    if local or base_model.count("/") > 1 or Path(base_model).expanduser().is_dir():
        return models.resolve_base_model(base_model, revision).path
    from huggingface_hub import hf_hub_download

    from ft_plugin.hub.calls import hub_error, hub_exceptions

    try:
        return str(Path(hf_hub_download(base_model, "config.json", revision=revision)).parent)
    except hub_exceptions() as exc:  # the message resolve_base_model gives
        raise hub_error(
            exc, f"base_model: {base_model!r} (not a local folder; as a Hub model)"
        ) from None


def _prepared_skeleton(
    method: FineTuningMethod, config: PretrainedConfig, recipe: Recipe
) -> torch.nn.Module:
    """The model as training prepares it, every tensor on the meta device."""
    import torch
    from transformers import AutoModelForCausalLM

    # torch's meta device, not accelerate.init_empty_weights: that one re-creates each
    # parameter as it is registered, which unties a tied output head (counted twice).
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config, trust_remote_code=recipe.trust_remote_code)
        if not recipe.lora_model_dir:
            return method.prepare(model, recipe)
        from ft_plugin.hub.refs import resolve_folder

        with warnings.catch_warnings():  # loading the adapter's weights into meta is a no-op
            warnings.simplefilter("ignore")
            return method.start_from(model, recipe, resolve_folder(recipe.lora_model_dir))


def _quantization(recipe: Recipe, method: FineTuningMethod) -> str | None:
    """``load_in_4bit`` / ``load_in_8bit`` when the method loads the base quantized
    (asked without calling ``method.quantization_config``, which imports bitsandbytes)."""
    if not method.takes_quantized_base:
        return None
    return (
        "load_in_4bit" if recipe.load_in_4bit else "load_in_8bit" if recipe.load_in_8bit else None
    )


def _weight_bytes(model: torch.nn.Module, base_bytes: int, quantized: str | None) -> float:
    """Bytes of the frozen parameters (trainable ones are in the optimizer part).

    Quantized, bitsandbytes packs the weights of the linear layers except the output
    head, and PEFT's ``prepare_model_for_kbit_training`` casts the rest to fp32.
    """
    import torch

    head = model.get_output_embeddings()
    packed: set[int] = set()
    if quantized:
        packed = {
            id(module.weight)
            for module in model.modules()
            if isinstance(module, torch.nn.Linear) and module is not head
        }
    other = 4 if quantized else base_bytes
    return sum(
        p.numel() * (QUANTIZED_BYTES[quantized] if id(p) in packed else other)
        for p in model.parameters()
        if not p.requires_grad
    )


def _activation_bytes(
    recipe: Recipe,
    model: torch.nn.Module,
    config: PretrainedConfig,
    value_bytes: int,
    checkpointing: bool,
) -> float:
    """What the backward of one micro-batch keeps: the decoder layers it passes through,
    and the logits (module docstring). With gradient checkpointing each layer keeps only
    its input, and one layer at a time is recomputed in full."""
    tokens = recipe.micro_batch_size * recipe.sequence_len
    text = config.get_text_config()
    hidden, layers = text.hidden_size, text.num_hidden_layers
    kept = _layers_with_gradients(model, layers)
    per_layer = ACTIVATION_VALUES_PER_HIDDEN * tokens * hidden * value_bytes
    per_layer += DORA_WEIGHT_COPIES * _dora_weights(model) * value_bytes / layers
    if checkpointing:
        stored = kept * tokens * hidden * value_bytes + (per_layer if kept else 0)
    else:
        stored = kept * per_layer
    return stored + tokens * text.vocab_size * LOGIT_BYTES


def _layers_with_gradients(model: torch.nn.Module, layers: int) -> int:
    """Decoder layers from the lowest one that trains to the top: the backward stops there.

    All of them when the input embeddings train or the layer list is not found.
    """
    import torch

    if any(p.requires_grad for p in model.get_input_embeddings().parameters()):
        return layers
    blocks = next(
        (m for m in model.modules() if isinstance(m, torch.nn.ModuleList) and len(m) == layers),
        None,
    )
    if blocks is None:
        return layers
    for index, block in enumerate(blocks):
        if any(p.requires_grad for p in block.parameters()):
            return layers - index
    return 0


def _dora_weights(model: torch.nn.Module) -> int:
    """Parameters of the base weights that DoRA adapts (PEFT's ``lora_magnitude_vector``)."""
    return sum(
        module.get_base_layer().weight.numel()
        for module in model.modules()
        if len(getattr(module, "lora_magnitude_vector", None) or ()) > 0
    )


def _notes(recipe: Recipe, quantized: str | None, checkpointing: bool) -> tuple[str, ...]:
    notes = []
    if quantized:
        bits = 4 if quantized == "load_in_4bit" else 8
        notes.append(
            f"{recipe.adapter}: LoRA on a {bits}-bit base; {bits}-bit linear weights counted at "
            f"{QUANTIZED_BYTES[quantized]:g} byte (bitsandbytes is needed to train, not to estimate)"
        )
    if checkpointing:
        notes.append("gradient checkpointing: each layer keeps only its input")
    return tuple(notes)
