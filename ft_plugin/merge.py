"""`ft-plugin merge`: fold a trained adapter into plain full weights.

LoRA, DoRA and IA3 merge exactly. A QLoRA adapter is merged into the base loaded in
full precision (dequantised), not into the 4-bit weights it was trained against, so
the merged model differs from the quantized one by the quantization error only.
Bottleneck and llama-adapter results cannot be merged (their method says why).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from ft_plugin import registry
from ft_plugin.errors import UserError


def merge_run(run_dir: Path, output: Path) -> Path:
    """Merge the adapter in ``run_dir`` into its base and save full safetensors weights.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        merge_run(Path("runs/medical-lora"), Path("merged"))  # PosixPath('merged')
    """
    import torch
    from peft import PeftModel

    from ft_plugin import models
    from ft_plugin.rundir import ADAPTER_CONFIG, RunDir

    recipe = RunDir(run_dir).load_recipe().recipe
    method = registry.load_method(recipe.adapter)
    if not method.uses_peft or not method.mergeable:
        raise UserError(
            f"{run_dir}: adapter {recipe.adapter} cannot be merged: {method.not_mergeable_reason}"
        )
    if not RunDir(run_dir).has_adapter():
        raise UserError(f"{run_dir}: no {ADAPTER_CONFIG}; training did not finish")
    if output.exists() and any(output.iterdir()):
        raise UserError(f"--output {output}: exists and is not empty")
    base = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    model = models.load_model(
        recipe, base, dtype=torch.float32
    )  # never quantized: dequantised merge
    merged = PeftModel.from_pretrained(model, str(run_dir)).merge_and_unload()
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}-", dir=output.parent))
    try:
        merged.save_pretrained(staging, safe_serialization=True)
        models.load_tokenizer(recipe, base).save_pretrained(staging)
        (staging / "ft_plugin_merge.json").write_text(
            json.dumps(
                {"merged_from": str(run_dir), "adapter": recipe.adapter, "base_model": base.hub_id},
                indent=2,
            )
        )
        if output.exists():
            output.rmdir()
        staging.rename(output)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return output
