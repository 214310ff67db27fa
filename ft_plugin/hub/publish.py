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
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ft_plugin import registry
from ft_plugin.errors import UserError

T = TypeVar("T")

TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
    "vocab.json", "merges.txt", "chat_template.jinja", "added_tokens.json",
)  # fmt: skip
RETRY_STATUSES = (429, 500, 502, 503, 504)


@dataclass
class PushResult:
    repo_id: str
    commit: str | None  # the new commit's id, or the existing head when nothing changed
    changed: bool
    url: str


def required_files(run_dir: Path, adapter: str) -> list[str]:
    """What a run directory must hold to be published (checked before any network call)."""
    weights = ["adapter_config.json", "adapter_model.safetensors"]
    if not registry.load_method(adapter).uses_peft:
        weights = ["config.json", "model.safetensors"]
    return ["recipe.yaml", "metrics.json", *weights]


def check_run_dir(run_dir: Path) -> Any:
    """The run's recipe, after checking that every required file is there."""
    from ft_plugin.config import load_recipe

    if not (run_dir / "recipe.yaml").is_file():
        raise UserError(f"{run_dir}: not a run directory (no recipe.yaml)")
    recipe = load_recipe(str(run_dir / "recipe.yaml")).recipe
    missing = [
        name for name in required_files(run_dir, recipe.adapter) if not (run_dir / name).is_file()
    ]
    if missing:
        raise UserError(
            f"{run_dir}: cannot push, missing {', '.join(missing)} (did training finish?)"
        )
    return recipe


def build_bundle(run_dir: Path, repo_id: str, staging: Path, *, merged: bool = False) -> Path:
    """Assemble what will be uploaded into ``staging`` (a fresh folder)."""
    from .card import RunInfo, build_card

    recipe = check_run_dir(run_dir)
    hub_id = _base_hub_id(recipe)
    if merged:
        from ft_plugin.merge import merge_run

        merge_run(run_dir, staging / "merged")
        for item in (staging / "merged").iterdir():
            item.rename(staging / item.name)
        (staging / "merged").rmdir()
    else:
        for name in required_files(run_dir, recipe.adapter)[2:]:
            shutil.copy2(run_dir / name, staging / name)
        if (run_dir / "adapter_config.json").is_file():
            _point_adapter_at_hub(staging / "adapter_config.json", hub_id)
    for name in (*TOKENIZER_FILES, "recipe.yaml", "metrics.json", "trainer_state.json"):
        if (run_dir / name).is_file() and not (staging / name).exists():
            shutil.copy2(run_dir / name, staging / name)
    if (run_dir / "eval").is_dir():
        shutil.copytree(run_dir / "eval", staging / "eval")
    curve = (
        "eval/training_curves.png" if (staging / "eval" / "training_curves.png").is_file() else None
    )
    card = build_card(RunInfo(run_dir, repo_id, hub_id), merged=merged, loss_curve=curve)
    card.save(staging / "README.md")
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


def with_retries(
    call: Callable[[], T], *, attempts: int = 4, base_delay: float = 1.0, what: str
) -> T:
    """Run ``call``, retrying HTTP 429/5xx and timeouts with exponential backoff."""
    from huggingface_hub.errors import HfHubHTTPError

    try:  # huggingface_hub 2.x talks through httpx2; 1.x through httpx
        import httpx2 as http_client
    except ImportError:
        import httpx as http_client

    for attempt in range(1, attempts + 1):
        try:
            return call()
        except HfHubHTTPError as exc:
            status = exc.response.status_code if exc.response is not None else None
            if status in RETRY_STATUSES and attempt < attempts:
                time.sleep(base_delay * 2 ** (attempt - 1))
                continue
            raise _hub_error(exc, what) from None
        except (http_client.TimeoutException, http_client.TransportError) as exc:
            if attempt < attempts:
                time.sleep(base_delay * 2 ** (attempt - 1))
                continue
            raise UserError(
                f"{what}: the Hub did not answer ({type(exc).__name__}) after {attempts} tries"
            ) from None
    raise AssertionError("unreachable")


def _hub_error(exc: Any, what: str) -> UserError:
    status = exc.response.status_code if exc.response is not None else None
    reasons = {
        401: "not authorised: log in with `hf auth login` or set HF_TOKEN to a token with write access",
        403: "forbidden: the token cannot write to this repo (read-only token, or not your namespace)",
        404: "not found (or no access with this token)",
    }
    # Never echo the exception text: it can carry request headers. Status and reason only.
    return UserError(f"{what}: {reasons.get(status, f'Hub error {status}')}")


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
