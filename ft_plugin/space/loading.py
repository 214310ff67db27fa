"""Finding and loading what the Space serves: run directories or Hub adapter repos.

One copy of the base weights serves every answer: several adapters become named adapters
of one ``PeftModel`` (``load_adapter``); a full-weights run serves alone. Models load from
safetensors only and never run remote code.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huggingface_hub import snapshot_download

from ft_plugin.errors import UserError
from ft_plugin.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS, EVAL, MODEL_WEIGHTS, RECIPE, RunDir

# What a Hub adapter repo may bring down: configs, safetensors weights, cards, plots.
# Pickled weights (*.bin, *.pt, *.pth, *.pkl) and code (*.py) are never downloaded.
HUB_PATTERNS = ["*.json", "*.safetensors", "*.yaml", "*.md", "*.txt", "*.jinja", "*.model"]
HUB_PATTERNS += [f"{EVAL}/*.png"]
FULL_WEIGHTS = MODEL_WEIGHTS.replace("model", "model*", 1)  # sharded: model-00001-of-….


@dataclass
class AdapterInfo:
    """One fine-tuned model the Space serves."""

    label: str  # shown to users and used as the API's adapter name
    peft_name: str | None  # the adapter's name inside the PeftModel (None: full weights)
    source: str  # what the user gave: a run directory or a Hub repo id
    run_dir: Path
    recipe: Any
    adapter_bytes: int
    template: Any | None  # ft_plugin.data.templates.Template

    @property
    def base_hub_id(self) -> str:
        from ft_plugin.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

        base = self.recipe.base_model
        if base.startswith(EMBEDDED_PREFIX):
            spec = EMBEDDED_MODELS.get(base[len(EMBEDDED_PREFIX) :])
            return spec.hub_id if spec else base
        return base

    @property
    def base_shown(self) -> str:
        """The base model as visitors see it: its Hub id, a local folder by its name only."""
        base = self.base_hub_id
        return Path(base).name if Path(base).expanduser().is_absolute() else base


def resolve_target(target: str, *, cache_dir: Path) -> tuple[Path, bool]:
    """A local run directory, or a Hub repo id downloaded with ``snapshot_download``.

    Returns the folder and whether it came from the Hub. Only configs, cards and
    safetensors weights are downloaded (no pickles, no code); ``HF_HUB_OFFLINE`` and the
    Hub cache are honoured. A Hub run trained on ft-plugin's embedded base model names
    the model by its Hub id instead when the embedded package is not installed (as on a
    Space), in a rewritten copy under ``cache_dir``.
    """
    local = Path(target).expanduser()
    if local.exists():
        if not RunDir(local).is_run():
            raise UserError(
                f"{target}: not a run directory (no {RECIPE}); the Space compares a "
                "fine-tuned run with its base model"
            )
        return local, False
    if target.startswith((".", "/", "~")) or target.count("/") != 1:
        raise UserError(f"{target}: no such run directory, and not a Hub repo id (OWNER/NAME)")
    folder = _download(target)
    if not RunDir(folder).is_run():
        raise UserError(
            f"{target}: the Hub repo has no {RECIPE}; publish runs with `ft-plugin push`"
        )
    return with_reachable_base(folder, target, cache_dir), True


def _download(repo_id: str) -> Path:
    from ft_plugin.hub.calls import hub_error, hub_exceptions

    try:
        return Path(snapshot_download(repo_id, allow_patterns=HUB_PATTERNS))
    except hub_exceptions() as exc:
        raise hub_error(exc, f"{repo_id} (not a local folder; as a Hub repo)") from None


def with_reachable_base(folder: Path, target: str, cache_dir: Path) -> Path:
    """``folder``, or a copy whose recipe names the embedded base model by its Hub id
    when the embedded weights' package is not installed (the Hub cache is not touched)."""
    from importlib import metadata

    from ft_plugin.config import LoadedRecipe
    from ft_plugin.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

    loaded = RunDir(folder).load_recipe()
    base = loaded.recipe.base_model
    spec = EMBEDDED_MODELS.get(base[len(EMBEDDED_PREFIX) :])
    if not base.startswith(EMBEDDED_PREFIX) or spec is None:
        return folder
    try:
        metadata.distribution(spec.distribution)
        return folder  # the embedded weights are installed: use them, offline
    except metadata.PackageNotFoundError:
        pass
    copy = cache_dir / "adapters" / target.replace("/", "--")
    if copy.exists():
        shutil.rmtree(copy)
    shutil.copytree(folder, copy, symlinks=False)
    recipe = loaded.recipe.model_copy(update={"base_model": spec.hub_id})
    RunDir(copy).write_recipe(LoadedRecipe(recipe, loaded.name, loaded.source, loaded.located))
    return copy


def template_of(recipe: Any) -> Any | None:
    """The run's domain template (system prompt, examples, sample data), if it has one."""
    from ft_plugin.data.formats import CONVERTERS
    from ft_plugin.data.templates import load_template

    kind = recipe.datasets[0].type if recipe.datasets else None
    return load_template(kind) if kind and kind not in CONVERTERS else None


def labels_of(targets: Sequence[str]) -> list[str]:
    """Distinct names for the targets: a run directory's folder name, or the repo id.

    Example:
        >>> labels_of(["me/a", "me/a", "me/b"])
        ['me/a', 'me/a-2', 'me/b']
    """
    labels: list[str] = []
    for target in targets:
        local = Path(target).expanduser()
        label = local.resolve().name if local.exists() else target
        candidate, n = label, 2
        while candidate in labels:
            candidate, n = f"{label}-{n}", n + 1
        labels.append(candidate)
    return labels


def peft_type(folder: Path) -> str:
    try:
        config = json.loads(RunDir(folder).file(ADAPTER_CONFIG).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "unknown"
    return str(config.get("peft_type", "unknown"))


def check_safe(folder: Path, recipe: Any, target: str) -> None:
    """No remote code, and safetensors weights only."""
    if recipe.trust_remote_code:
        raise UserError(
            f"{target}: the recipe sets trust_remote_code: true; the Space never runs code "
            "from a model repo"
        )
    from ft_plugin import registry

    if registry.load_method(recipe.adapter).uses_peft:
        if not RunDir(folder).file(ADAPTER_WEIGHTS).is_file():
            raise UserError(f"{target}: no {ADAPTER_WEIGHTS} (safetensors only)")
    elif not list(Path(folder).glob(FULL_WEIGHTS)):
        raise UserError(f"{target}: no {MODEL_WEIGHTS} (safetensors only)")


def _resolve_all(targets: Sequence[str], data_dir: Path) -> list[tuple[str, Path, Any]]:
    resolved = []
    for target in targets:
        folder, _ = resolve_target(target, cache_dir=data_dir / "cache")
        recipe = RunDir(folder).load_recipe().recipe
        check_safe(folder, recipe, target)
        resolved.append((target, folder, recipe))
    return resolved


def _base(recipe: Any) -> tuple[str, str | None]:
    return recipe.base_model, recipe.base_model_revision


def _check_shareable(resolved: list[tuple[str, Path, Any]]) -> None:
    """Several models in one Space: PEFT adapters of one base model, of one PEFT type."""
    from ft_plugin import registry

    first_target, _, first = resolved[0]
    for target, _, recipe in resolved:
        if not registry.load_method(recipe.adapter).uses_peft:
            raise UserError(
                f"{target}: a {recipe.adapter} run has full weights; several models "
                "in one Space must be PEFT adapters of one base model"
            )
        if _base(recipe) != _base(first):
            raise UserError(
                f"{target}: trained on {recipe.base_model}, but {first_target} on "
                f"{first.base_model}; adapters in one Space must share the base model"
            )
    kinds = {peft_type(folder) for _, folder, _ in resolved}
    if len(kinds) > 1:
        raise UserError(
            f"adapters of different PEFT types ({', '.join(sorted(kinds))}) cannot "
            "share one model; serve them in separate Spaces"
        )


def load_adapters(
    targets: Sequence[str], data_dir: Path, labels: Sequence[str] | None = None
) -> tuple[Any, list[AdapterInfo]]:
    """The loaded model (``LoadedTarget``, with its baseline) and one info per target,
    named by ``labels`` (default: `labels_of`)."""
    from ft_plugin import registry
    from ft_plugin.evaluate.targets import load_target

    resolved = _resolve_all(targets, data_dir)
    if len(resolved) > 1:
        _check_shareable(resolved)
    first_target, first_folder, first = resolved[0]
    loaded = load_target(str(first_folder), with_baseline=True)
    if loaded.baseline is None:
        raise UserError(f"{first_target}: no base model to compare with")
    uses_peft = registry.load_method(first.adapter).uses_peft
    infos = []
    for i, ((target, folder, recipe), label) in enumerate(
        zip(resolved, labels or labels_of(targets), strict=True)
    ):
        peft_name = None
        if uses_peft:
            peft_name = "default" if i == 0 else f"adapter_{i}"
            if i > 0:
                method = registry.load_method(recipe.adapter)
                method.load_adapter(loaded.model, folder, adapter_name=peft_name)
        pattern = ADAPTER_WEIGHTS if uses_peft else FULL_WEIGHTS
        size = sum(p.stat().st_size for p in Path(folder).glob(pattern))
        info = AdapterInfo(label, peft_name, target, folder, recipe, size, template_of(recipe))
        infos.append(info)
    if uses_peft:
        loaded.model.set_adapter("default")
    loaded.model.eval()
    return loaded, infos
