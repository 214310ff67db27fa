"""Axolotl's kernel plugins (Liger, Cut Cross Entropy, Kernels): applied where the package
and the hardware allow, else one line says why.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe


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

    from ft_plugin.config.schema.plugins import KERNEL_PLUGINS, TRACKER_PLUGINS

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
