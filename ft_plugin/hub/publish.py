"""`ft-plugin push`: publish a run directory to the Hub in one commit.

The bundle: the adapter (or merged full weights with ``merged=True``), tokenizer
files, `recipe.yaml`, `metrics.json`, the eval report and plots, and `README.md` (the
model card). `adapter_config.json` names the base model by its Hub id, so the adapter
loads for anyone without ft-plugin. Everything is checked before any network call;
unchanged files are not uploaded again, so pushing the same run twice makes no second
commit. Transient failures (HTTP 5xx, timeouts) are retried with backoff; 401/403/404
end with one line that never shows the token.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_plugin import registry, rundir
from ft_plugin.errors import UserError
from ft_plugin.hub_calls import with_retries
from ft_plugin.rundir import RunDir


@dataclass
class PushResult:
    repo_id: str
    commit: str | None  # the new commit's id, or the existing head when nothing changed
    changed: bool
    url: str


def check_run_dir(run_dir: Path) -> Any:
    """The run's recipe, after checking that every file a push needs is there."""
    run = RunDir(run_dir)
    recipe = run.load_recipe().recipe
    missing = run.missing_for_publishing(registry.load_method(recipe.adapter).uses_peft)
    if missing:
        raise UserError(
            f"{run_dir}: cannot push, missing {', '.join(missing)} (did training finish?)"
        )
    return recipe


def build_bundle(run_dir: Path, repo_id: str, staging: Path, *, merged: bool = False) -> Path:
    """Assemble what will be uploaded into ``staging`` (a fresh folder)."""
    from .card import RunInfo, build_card

    run, recipe = RunDir(run_dir), check_run_dir(run_dir)
    hub_id = _base_hub_id(recipe)
    if merged:
        from ft_plugin.merge import merge_run

        merge_run(run_dir, staging / "merged")
        for item in (staging / "merged").iterdir():
            item.rename(staging / item.name)
        (staging / "merged").rmdir()
    else:
        for name in run.weight_files(registry.load_method(recipe.adapter).uses_peft):
            shutil.copy2(run.file(name), staging / name)
        if run.has_adapter():
            _point_adapter_at_hub(staging / rundir.ADAPTER_CONFIG, hub_id)
    contract = (rundir.RECIPE, rundir.METRICS, rundir.TRAINER_STATE)
    for name in (*run.tokenizer_files(), *contract):
        if run.file(name).is_file() and not (staging / name).exists():
            shutil.copy2(run.file(name), staging / name)
    if run.eval_dir().is_dir():
        shutil.copytree(run.eval_dir(), staging / rundir.EVAL)
    curve = f"{rundir.EVAL}/training_curves.png"
    curve = curve if (staging / curve).is_file() else None
    card = build_card(RunInfo(run_dir, repo_id, hub_id), merged=merged, loss_curve=curve)
    card.save(staging / rundir.CARD)
    return staging


def _base_hub_id(recipe: Any) -> str:
    from ft_plugin.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

    if recipe.base_model.startswith(EMBEDDED_PREFIX):
        return EMBEDDED_MODELS[recipe.base_model[len(EMBEDDED_PREFIX) :]].hub_id
    if Path(recipe.base_model).expanduser().exists():
        raise UserError(
            f"base_model: {recipe.base_model} is a local folder; a pushed adapter must name its base by "
            "Hub id. Push the base model first, or use --merged to publish full weights"
        )
    return recipe.base_model


def _point_adapter_at_hub(config_path: Path, hub_id: str) -> None:
    config = json.loads(config_path.read_text())
    config["base_model_name_or_path"] = hub_id  # not the local cache path training used
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")


def push_run(
    run_dir: Path,
    repo_id: str,
    *,
    private: bool | None = None,
    revision: str | None = None,
    create_pr: bool = False,
    merged: bool = False,
    commit_message: str | None = None,
    retry_delay: float = 1.0,
) -> PushResult:
    """Publish ``run_dir`` to ``repo_id`` in one commit.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        push_run(Path("runs/medical-lora"), "me/medical-lora")  # PushResult(repo_id='me/medical-lora', commit='…', changed=True, url='https://huggingface.co/me/medical-lora')
    """
    from huggingface_hub import HfApi

    recipe = check_run_dir(run_dir)
    private = recipe.hub.private if private is None else private
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="ft-plugin-push-") as tmp:
        bundle = build_bundle(run_dir, repo_id, Path(tmp), merged=merged)
        with_retries(
            lambda: api.create_repo(repo_id, private=private, exist_ok=True),
            what=f"create {repo_id}",
            base_delay=retry_delay,
        )
        if revision:
            with_retries(
                lambda: api.create_branch(repo_id, branch=revision, exist_ok=True),
                what=f"branch {revision}",
                base_delay=retry_delay,
            )
        head = with_retries(
            lambda: api.repo_info(repo_id, revision=revision).sha,
            what=f"read {repo_id}",
            base_delay=retry_delay,
        )
        info = with_retries(
            lambda: api.upload_folder(
                repo_id=repo_id, folder_path=str(bundle), revision=revision, create_pr=create_pr,
                commit_message=commit_message or recipe.hub.commit_message or f"ft-plugin: {recipe.adapter} run {run_dir.name}",
            ),
            what=f"push to {repo_id}", base_delay=retry_delay,
        )  # fmt: skip
    commit = getattr(info, "oid", None)
    url = getattr(info, "pr_url", None) or f"{api.endpoint}/{repo_id}"
    return PushResult(repo_id, commit, commit != head, url)
