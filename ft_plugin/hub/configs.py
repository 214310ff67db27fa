"""Share recipes and templates through a Hub repo, used back with `hf://OWNER/REPO/FILE`.

`ft-plugin recipes push a.yaml b.yaml --repo-id team/recipes` validates every file
first (nothing is uploaded when one is bad), then uploads them, with a README that
lists them, in one commit. Relative `extends:` between pushed files keep working,
because `hf://` resolves them as siblings in the same repo.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Literal

from huggingface_hub import HfApi

from ft_plugin.errors import UserError
from ft_plugin.hub.calls import with_retries

from .publish import PushResult

Kind = Literal["recipes", "templates"]


def _describe(path: Path, kind: Kind) -> str:
    if kind == "recipes":
        from ft_plugin.config import load_recipe

        recipe = load_recipe(str(path)).recipe
        return f"{recipe.adapter}, {recipe.domain or '-'}: {recipe.description or ''}".strip()
    from ft_plugin.data.templates import load_template

    template = load_template(str(path))
    kind_name = "classification" if template.labels else "generation"
    return f"{template.domain}, {kind_name}: {template.description}"


def _readme(repo_id: str, kind: Kind, rows: list[tuple[str, str]]) -> str:
    noun = "recipe" if kind == "recipes" else "template"
    lines = ["---", "tags:", "- ft-plugin", f"- ft-plugin-{kind}", "---", "", f"# {repo_id}", ""]
    lines += [f"ft-plugin {kind}, shared. Use one with:", "", "```bash"]
    if kind == "recipes":
        lines.append(f"ft-plugin train hf://{repo_id}/{rows[0][0]}")
        lines.append(f"accelerate launch -m ft_plugin.train hf://{repo_id}/{rows[0][0]}")
    else:
        lines.append(f"ft-plugin templates preview hf://{repo_id}/{rows[0][0]}")
    lines += ["```", "", f"| {noun} | what |", "|---|---|"]
    lines += [f"| `{name}` | {what} |" for name, what in rows]
    return "\n".join(lines) + "\n"


def push_configs(
    files: list[Path], repo_id: str, kind: Kind, *, private: bool = True
) -> PushResult:
    """Validate and publish recipe or template files, with a README index.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        push_configs([Path("medical-qlora.yaml")], "team/recipes", "recipes")
    """
    names = [f.name for f in files]
    if len(set(names)) != len(names):
        raise UserError(f"{kind} push: two files share a name; the repo is flat")
    rows = [(f.name, _describe(f, kind)) for f in files]  # validates before any upload
    api = HfApi()
    with tempfile.TemporaryDirectory(prefix="ft-plugin-configs-") as tmp:
        staging = Path(tmp)
        for path in files:
            shutil.copy2(path, staging / path.name)
        (staging / "README.md").write_text(_readme(repo_id, kind, rows), encoding="utf-8")
        with_retries(
            lambda: api.create_repo(repo_id, private=private, exist_ok=True),
            what=f"create {repo_id}",
        )
        head = with_retries(lambda: api.repo_info(repo_id).sha, what=f"read {repo_id}")
        info = with_retries(
            lambda: api.upload_folder(repo_id=repo_id, folder_path=str(staging),
                                      commit_message=f"ft-plugin: {len(files)} {kind}"),
            what=f"push to {repo_id}",
        )  # fmt: skip
    return PushResult(repo_id, info.oid, info.oid != head, f"{api.endpoint}/{repo_id}")
