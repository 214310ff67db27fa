"""Recipe keys of Axolotl's `plugins:`: the speed and memory kernel integrations we apply
(Liger, Cut Cross Entropy, Kernels), trackers accepted with a line, the rest refused."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from .base import Section

PLUGIN_PREFIX = "axolotl.integrations."
# Axolotl integrations that are speed or memory kernels: accepted; applied where the package
# and the hardware allow (ft_plugin.models.kernel_plugin_notes), else one line says so.
KERNEL_PLUGINS = {
    "axolotl.integrations.liger.LigerPlugin": "Liger",
    "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin": "Cut Cross Entropy",
    "axolotl.integrations.kernels.KernelsPlugin": "Kernels (MoE expert kernels)",
}
# Which plugin reads which keys (by key prefix).
KEY_PLUGINS = {
    "liger_": "axolotl.integrations.liger.LigerPlugin",
    "cut_cross_entropy": "axolotl.integrations.cut_cross_entropy.CutCrossEntropyPlugin",
}
# Experiment trackers: accepted with no effect (as their keys are: keys.yaml), one line.
TRACKER_PLUGINS = {"axolotl.integrations.swanlab.SwanLabPlugin": "SwanLab"}
# Other integrations Axolotl's examples name, with what to do instead.
OTHER_PLUGINS = {
    "expert_parallel": "it shards MoE experts across GPUs; ft-plugin trains MoE models with "
    "accelerate's data parallel or FSDP (fsdp_config:)",
    "llm_compressor": "sparse fine-tuning; train dense weights, then compress the result",
    "diffusion": "diffusion language models are not supported",
}


def plugin_refusal(path: str) -> str | None:
    """Why ``path`` (an entry of `plugins:`) cannot run here, or None for a kernel plugin.

    Example:
        >>> plugin_refusal("axolotl.integrations.liger.LigerPlugin") is None
        True
        >>> plugin_refusal("axolotl.integrations.grokfast.GrokfastPlugin").split(":")[0]
        'axolotl.integrations.grokfast.GrokfastPlugin is not available in ft-plugin'
    """
    if path in KERNEL_PLUGINS or path in TRACKER_PLUGINS:
        return None
    parts = path.removeprefix(PLUGIN_PREFIX).split(".") if path.startswith(PLUGIN_PREFIX) else []
    why = OTHER_PLUGINS.get(
        parts[0] if parts else "",
        "ft-plugin runs only the speed and memory kernel plugins " + ", ".join(KERNEL_PLUGINS),
    )
    return f"{path} is not available in ft-plugin: {why}"


class KernelPluginsSection(Section):
    """Axolotl's `plugins:` and the keys of the speed and memory kernel plugins it names."""

    plugins: list[str] | None = Field(
        None,
        description="Axolotl integrations, by import path. Accepted: "
        + ", ".join(KERNEL_PLUGINS)
        + " (speed and memory kernels: applied where the package and a CUDA GPU allow, else "
        "one line says what runs instead) and the SwanLab tracker (no effect: one line); any "
        "other integration is refused, by name.",
    )
    liger_rope: bool | None = Field(None, description="Liger: fused RoPE kernel.")
    liger_rms_norm: bool | None = Field(None, description="Liger: fused RMSNorm kernel.")
    liger_rms_norm_gated: bool | None = Field(
        None, description="Liger: fused gated RMSNorm (models that have one)."
    )
    liger_layer_norm: bool | None = Field(None, description="Liger: fused LayerNorm kernel.")
    liger_glu_activation: bool | None = Field(
        None, description="Liger: fused SwiGLU / GeGLU MLP kernel."
    )
    liger_swiglu: bool | None = Field(None, description="Liger: old name of liger_glu_activation.")
    liger_cross_entropy: bool | None = Field(
        None,
        description="Liger: cross-entropy kernel. The loss runs in TRL's fused LM head here, "
        "which already never holds the full logits.",
    )
    liger_fused_linear_cross_entropy: bool | None = Field(
        None,
        description="Liger: fused head + loss. TRL's fused LM head does this job (the loss in "
        "tiles, without the [tokens x vocabulary] logits).",
    )
    liger_use_token_scaling: bool | None = Field(
        None, description="Liger: scale each token's loss by its probability (fused loss only)."
    )
    liger_kernel_impl: Literal["cutile", "cutedsl"] | None = Field(
        None, description="Liger: alternative kernel backend (LIGER_KERNEL_IMPL)."
    )
    cut_cross_entropy: bool | None = Field(
        None,
        description="Cut Cross Entropy: the loss without the full logits. TRL's fused LM head "
        "does this job here.",
    )
    cut_cross_entropy_accum_c_fp32: bool | None = Field(
        None, description="Cut Cross Entropy: accumulate the head's gradient in fp32."
    )
    cut_cross_entropy_c_grad_chunk_size: int | Literal["auto"] | None = Field(
        None, description="Cut Cross Entropy: rows per chunk of the head's gradient."
    )

    @field_validator("plugins")
    @classmethod
    def _known_plugins(cls, value: list[str] | None) -> list[str] | None:
        refused = [why for path in value or [] if (why := plugin_refusal(path))]
        if refused:
            raise ValueError("; ".join(refused) + " (remove it from plugins:)")
        return value

    def keys_without_plugin(self) -> list[str]:
        """The liger_* / cut_cross_entropy* keys set (to anything but false) without their
        plugin in `plugins:` (Axolotl reads them only with it)."""
        listed = set(self.plugins or [])
        return [
            name
            for name in KernelPluginsSection.model_fields
            if name != "plugins"
            and getattr(self, name) not in (None, False)
            and next(path for prefix, path in KEY_PLUGINS.items() if name.startswith(prefix))
            not in listed
        ]
