"""`ft-plugin push`: publish a run directory to the Hub in one commit.

The bundle: the adapter (or merged full weights with ``merged=True``), tokenizer
files, `recipe.yaml`, `metrics.json`, the eval report and plots, and `README.md` (the
model card). `adapter_config.json` names the base model by its Hub id, so the adapter
loads for anyone without ft-plugin. Unchanged files are not uploaded again, so pushing
the same run twice makes no second commit. Transient failures (HTTP 5xx, timeouts) are
retried with backoff; 401/403/404 end with one line that never shows the token.

Publishing goes only where the owner means, and every check runs before anything is
created or uploaded (a refusal leaves the Hub as it was):

- a repo that exists already is pushed into only with ``overwrite=True`` (``--overwrite``);
- visibility (``private``, else the recipe's ``hub.private``) is applied to an existing
  repo only towards privacy (public -> private, with ``update_repo_settings``, before the
  upload); a push that would need a private repo made public is refused: making a repo
  public is done on the Hub, by a person, on purpose;
- with ``namespaces`` (the Space passes its owner's), the repo id's owner must be one of them.

Nothing local leaves (`hub/public.py`): `recipe.yaml`, the card, `eval/report.json` and
`report.md` name files by their name and URLs by host and file name. From `eval/` only the
report and the plots go; `predictions.jsonl` (prompts, references, answers: the rows
themselves) only with ``include_predictions=True``; anything else there (rating sheets and
their keys) never. A last check refuses the push if a file still holds the run folder's
absolute path, a scrubbed path, or a URL's query string.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_plugin import registry, rundir
from ft_plugin.errors import UserError
from ft_plugin.hub.calls import with_retries
from ft_plugin.rundir import RunDir

from .public import (
    public_path,
    public_recipe,
    public_recipe_yaml,
    public_report,
    public_value,
    scrubbed_values,
)

MERGE_RECORD = "ft_plugin_merge.json"  # written by ft_plugin.merge next to merged weights
_MIN_GUARDED_PATH = 8  # shorter paths (``/a/b``) would match by chance in any file


@dataclass
class PushResult:
    repo_id: str
    commit: str | None  # the new commit's id, or the existing head when nothing changed
    changed: bool
    url: str
    made_private: bool = False  # an existing public repo was made private for this push


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


def check_namespace(repo_id: str, namespaces: Collection[str] | None) -> None:
    """Refuse ``repo_id`` unless its owner is one of ``namespaces`` (None: any owner).

    Hub user and organisation names are unique regardless of case, so case is ignored.

    Example:
        >>> check_namespace("ana/med-lora", ["ana", "ana-lab"])
        >>> check_namespace("mallory/x", ["ana", "ana-lab"])
        Traceback (most recent call last):
        ...
        ft_plugin.errors.UserError: repo id mallory/x: this Space publishes only under ana (or ana-lab)
    """
    if namespaces is None:
        return
    owner, _, name = repo_id.partition("/")
    allowed = [n for n in namespaces if n]
    if not allowed:
        raise UserError(f"repo id {repo_id}: this Space has no namespace to publish under")
    if name and owner.casefold() in {n.casefold() for n in allowed}:
        return
    others = f" (or {', '.join(allowed[1:])})" if len(allowed) > 1 else ""
    raise UserError(f"repo id {repo_id}: this Space publishes only under {allowed[0]}{others}")


def build_bundle(
    run_dir: Path,
    repo_id: str,
    staging: Path,
    *,
    merged: bool = False,
    include_predictions: bool = False,
    with_gguf: bool = False,
) -> Path:
    """Assemble what will be uploaded into ``staging`` (a fresh folder): public versions of
    the run's files only (see the module docstring)."""
    from .card import RunInfo, build_card

    run, recipe = RunDir(run_dir), check_run_dir(run_dir)
    hub_id = _base_hub_id(recipe, merged=merged)
    if merged:
        from ft_plugin.merge import merge_run

        merge_run(run_dir, staging / "merged")
        for item in (staging / "merged").iterdir():
            item.rename(staging / item.name)
        (staging / "merged").rmdir()
        _write_public_json(staging / MERGE_RECORD, staging / MERGE_RECORD, ("merged_from",))
    else:
        for name in run.weight_files(registry.load_method(recipe.adapter).uses_peft):
            shutil.copy2(run.file(name), staging / name)
        if run.has_adapter():
            _point_adapter_at_hub(staging / rundir.ADAPTER_CONFIG, hub_id)
    for name in run.tokenizer_files():
        if not (staging / name).exists():
            shutil.copy2(run.file(name), staging / name)
    for name in (rundir.METRICS, rundir.TRAINER_STATE):
        if run.file(name).is_file():
            _write_public_json(run.file(name), staging / name, ("best_model_checkpoint",))
    (staging / rundir.RECIPE).write_text(public_recipe_yaml(run.recipe_text()), encoding="utf-8")
    _copy_eval(run, staging, recipe, include_predictions)
    curve = f"{rundir.EVAL}/training_curves.png"
    curve = curve if (staging / curve).is_file() else None
    exports = _copy_gguf_exports(run_dir, staging) if with_gguf else None
    card = build_card(RunInfo(run_dir, repo_id, hub_id), merged=merged, loss_curve=curve,
                      exports=exports)  # fmt: skip
    card.save(staging / rundir.CARD)
    _refuse_local_traces(staging, _local_traces(run, recipe))
    return staging


def _copy_gguf_exports(run_dir: Path, staging: Path) -> dict[str, dict[str, Any]]:
    """The GGUF files (and Modelfile) `ft-plugin export` wrote into RUN_DIR/export, copied
    for upload; their records (without the prompts and answers compared) for the card."""
    from ft_plugin.export.run import exported_files

    folder = run_dir / "export"
    exports = {name: record for name, record in exported_files(folder).items()
               if record["format"] in ("gguf", "ollama") and (folder / name).is_file()}  # fmt: skip
    if not exports:
        raise UserError(f"--with-gguf: {folder} holds no GGUF export; run `ft-plugin export "
                        f"{run_dir} --format gguf` first")  # fmt: skip
    for name, record in exports.items():
        for file in record["files"]:
            shutil.copy2(folder / file, staging / file)
        record["bytes"] = (folder / name).stat().st_size
        record["check"] = {k: v for k, v in record["check"].items() if k != "differing"}
    return exports


def _write_public_json(source: Path, target: Path, path_keys: tuple[str, ...] = ()) -> None:
    """``source`` (a JSON object) written to ``target`` with its paths made public."""
    data = public_value(json.loads(source.read_text(encoding="utf-8")))
    for key in path_keys:
        if isinstance(data.get(key), str):
            data[key] = public_path(data[key])
    target.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _copy_eval(run: RunDir, staging: Path, recipe: Any, include_predictions: bool) -> None:
    """The public part of ``eval/``: the plots, the report with its paths made public and
    report.md rebuilt from it (its side-by-side answers only with the predictions)."""
    from ft_plugin.evaluate.tables import markdown

    source, target = run.eval_dir(), staging / rundir.EVAL
    if not source.is_dir():
        return
    target.mkdir()
    plots = sorted(p.name for p in source.glob("*.png") if p.is_file())
    for name in plots:
        shutil.copy2(source / name, target / name)
    answers, predictions = source / rundir.PREDICTIONS, None
    if include_predictions and answers.is_file():
        shutil.copy2(answers, target / rundir.PREDICTIONS)
        lines = answers.read_text(encoding="utf-8").splitlines()
        predictions = [json.loads(line) for line in lines if line.strip()]
    report = public_report(run.report(), recipe)
    if report is not None:
        text = json.dumps(report, indent=2, ensure_ascii=False) + "\n"
        (target / rundir.REPORT).write_text(text, encoding="utf-8")
        (target / "report.md").write_text(markdown(report, plots, predictions), encoding="utf-8")


def _local_traces(run: RunDir, recipe: Any) -> set[str]:
    """What must not be published: the run folder's absolute path, and every absolute
    path and URL secret the public versions of the recipe and the report left out."""
    import yaml

    original = yaml.safe_load(run.recipe_text()) or {}
    traces = scrubbed_values(original, public_recipe(original))
    report = run.report()
    if report is not None:
        traces |= scrubbed_values(report, public_report(report, recipe))
    traces |= {str(run.path.absolute()), str(run.path.resolve())}
    return {t for t in traces if len(t) >= _MIN_GUARDED_PATH or not t.startswith(("/", "~"))}


def _refuse_local_traces(staging: Path, traces: set[str]) -> None:
    """The last check before any upload: no bundled file holds a local trace (weights
    are not searched: they are numbers)."""
    needles = [t.encode("utf-8") for t in traces if t]
    for path in sorted(staging.rglob("*")):
        if not path.is_file() or path.suffix == ".safetensors":
            continue
        data = path.read_bytes()
        if any(needle in data for needle in needles):
            name = path.relative_to(staging).as_posix()
            raise UserError(
                f"{name}: would publish a local path or a URL's query string of this machine; "
                "nothing was pushed (this is a bug in ft-plugin: please report it)"
            )


def _base_hub_id(recipe: Any, *, merged: bool = False) -> str | None:
    """The base model's Hub id; None for a local base under merged weights, which need
    none (an adapter must name its base by Hub id)."""
    from ft_plugin.models import EMBEDDED_MODELS, EMBEDDED_PREFIX

    if recipe.base_model.startswith(EMBEDDED_PREFIX):
        return EMBEDDED_MODELS[recipe.base_model[len(EMBEDDED_PREFIX) :]].hub_id
    if Path(recipe.base_model).expanduser().exists():
        if merged:
            return None
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
    overwrite: bool = False,
    include_predictions: bool = False,
    with_gguf: bool = False,
    namespaces: Collection[str] | None = None,
    retry_delay: float = 1.0,
) -> PushResult:
    """Publish ``run_dir`` to ``repo_id`` in one commit, after every check (module docstring).

    ``private``: None means the recipe's ``hub.private``. ``overwrite``: push into a repo
    that exists. ``include_predictions``: also push ``eval/predictions.jsonl``.
    ``with_gguf``: also push the GGUF files (and Modelfile) ``ft-plugin export`` wrote.
    ``namespaces``: the owners ``repo_id`` may have (None: any).

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        push_run(Path("runs/medical-lora"), "me/medical-lora")  # PushResult(repo_id='me/medical-lora', commit='…', changed=True, url='https://huggingface.co/me/medical-lora')
        push_run(Path("runs/medical-lora"), "me/medical-lora", overwrite=True)  # changed=False: same files
    """
    from huggingface_hub import HfApi

    check_namespace(repo_id, namespaces)
    recipe = check_run_dir(run_dir)
    private = recipe.hub.private if private is None else private
    api = HfApi()
    existing = _existing_repo(api, repo_id, retry_delay)
    make_private = _check_existing(repo_id, existing, private=private, overwrite=overwrite)
    with tempfile.TemporaryDirectory(prefix="ft-plugin-push-") as tmp:
        bundle = build_bundle(
            run_dir, repo_id, Path(tmp), merged=merged, include_predictions=include_predictions,
            with_gguf=with_gguf,
        )  # fmt: skip
        if existing is None:  # exist_ok=False: a repo created meanwhile is not pushed into
            with_retries(lambda: api.create_repo(repo_id, private=private),
                         what=f"create {repo_id}", base_delay=retry_delay)  # fmt: skip
        elif make_private:  # before the upload: the new files are never public
            with_retries(lambda: api.update_repo_settings(repo_id, private=True),
                         what=f"make {repo_id} private", base_delay=retry_delay)  # fmt: skip
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
    return PushResult(repo_id, commit, commit != head, url, made_private=make_private)


def _existing_repo(api: Any, repo_id: str, retry_delay: float) -> Any | None:
    """The repo's info (``.private``) when it exists and the token sees it, else None."""
    from huggingface_hub.errors import RepositoryNotFoundError

    def read() -> Any | None:
        try:
            return api.repo_info(repo_id)
        except RepositoryNotFoundError:
            return None

    return with_retries(read, what=f"read {repo_id}", base_delay=retry_delay)


def _check_existing(repo_id: str, existing: Any | None, *, private: bool, overwrite: bool) -> bool:
    """Refuse a push into an existing repo without ``overwrite``, or one that would need a
    private repo made public; True when a public repo is to be made private first."""
    if existing is None:
        return False
    if not overwrite:
        raise UserError(
            f"{repo_id} already exists on the Hub; pass --overwrite to push this run into it"
        )
    is_private = bool(existing.private)
    if is_private and not private:
        raise UserError(
            f"{repo_id} is private on the Hub and this push asks for a public repo (--public or "
            "hub.private: false); make it public in its Settings on the Hub, or pass --private"
        )
    return private and not is_private


def push_trained_run(recipe: Any, run_dir: Path) -> PushResult | None:
    """After training: push ``run_dir`` to the recipe's ``hub_model_id``, when it names one.

    The one place that decides "train, then push" (`ft-plugin train`, ``python -m
    ft_plugin.train``). ``hub_model_id`` names the repo this run updates, as in Axolotl;
    only the user's own recipe can set it (config/trust.py), so pushing into the
    existing repo is meant.

    Example (usage, not run as a doctest: it needs a run and the Hub)::

        pushed = push_trained_run(loaded.recipe, result.run_dir)
        pushed.url if pushed else "not pushed: no hub_model_id"
    """
    if not recipe.hub_model_id:
        return None
    hub = recipe.hub
    return push_run(run_dir, recipe.hub_model_id, revision=hub.revision,
                    create_pr=hub.create_pr, overwrite=True)  # fmt: skip
