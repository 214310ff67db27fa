"""`hf://` references: a file in a Hub repo, resolved through the Hub cache.

``hf://OWNER/REPO[@REVISION]/PATH`` names a file in a model repo;
``hf://datasets/OWNER/REPO[@REVISION]/PATH`` and ``hf://spaces/…`` name files in
dataset and Space repos. Resolution goes through ``huggingface_hub.hf_hub_download``,
so ``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HUB_OFFLINE`` and the cache behave as usual.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace
from pathlib import Path

from ft_plugin.errors import UserError

PREFIX = "hf://"
_REPO_TYPES = {"datasets": "dataset", "spaces": "space", "models": "model"}
_COMMIT = re.compile(r"[0-9a-f]{40}")
# What a run directory (an adapter to start from, a run EWC protects) needs from a Hub
# repo: weights as safetensors, configs, the recipe, tokenizer files. Never code (*.py)
# or pickles (*.bin, *.pt, *.pth, *.pkl, *.ckpt), which a load could execute.
FOLDER_PATTERNS = [
    "*.safetensors", "*.json", "*.yaml", "*.txt", "*.model", "*.jinja", "*.tiktoken",
]  # fmt: skip


@dataclass(frozen=True)
class HubRef:
    """A parsed ``hf://`` reference."""

    repo_id: str
    path: str
    revision: str | None = None
    repo_type: str = "model"

    def __str__(self) -> str:
        from urllib.parse import quote

        from huggingface_hub.hf_api import SPECIAL_REFS_REVISION_REGEX

        kind = {"dataset": "datasets/", "space": "spaces/"}.get(self.repo_type, "")
        revision = self.revision or ""
        if "/" in revision and not SPECIAL_REFS_REVISION_REGEX.fullmatch(revision):
            revision = quote(revision, safe="")
        rev = f"@{revision}" if revision else ""
        return f"{PREFIX}{kind}{self.repo_id}{rev}/{self.path}"

    @property
    def pinned(self) -> bool:
        """True when the revision is a full commit id: the file cannot change under it."""
        return is_commit(self.revision)

    def at(self, revision: str) -> HubRef:
        """The same file at ``revision`` (e.g. the commit a branch pointed to)."""
        return replace(self, revision=revision)

    def sibling(self, relative: str) -> HubRef:
        """The reference for ``relative`` resolved against this file's folder."""
        joined = posixpath.normpath(posixpath.join(posixpath.dirname(self.path), relative))
        if joined.startswith(".."):
            raise UserError(f"{relative}: points outside the Hub repo {self.repo_id}")
        return HubRef(self.repo_id, joined, self.revision, self.repo_type)


def is_commit(revision: str | None) -> bool:
    """True for a full 40-hex commit id (what a branch or tag cannot be moved under)."""
    return revision is not None and _COMMIT.fullmatch(revision) is not None


def is_hub_ref(text: str) -> bool:
    return text.startswith(PREFIX)


def parse_hub_ref(text: str) -> HubRef:
    """Parse ``hf://[datasets/|spaces/]OWNER/REPO[@REV]/PATH``.

    A revision holds no ``/`` except the Hub's own special refs (``refs/pr/N``,
    ``refs/convert/parquet``, recognised as ``HfFileSystem`` does); any revision may
    also be percent-encoded (``@refs%2Fheads%2Fdev``).

    Example:
        >>> parse_hub_ref("hf://team/recipes@v1/medical/qlora.yaml")
        HubRef(repo_id='team/recipes', path='medical/qlora.yaml', revision='v1', repo_type='model')
        >>> parse_hub_ref("hf://datasets/team/notes@refs/pr/1/train.jsonl").revision
        'refs/pr/1'
    """
    from urllib.parse import unquote

    from huggingface_hub.hf_api import SPECIAL_REFS_REVISION_REGEX

    if not is_hub_ref(text):
        raise UserError(f"{text}: not an hf:// reference")
    body = text[len(PREFIX) :]
    repo_type = "model"
    first, _, rest = body.partition("/")
    if first in _REPO_TYPES:
        repo_type, body = _REPO_TYPES[first], rest
    owner, _, rest = body.partition("/")
    repo, _, rest = rest.partition("/")
    revision = None
    if "@" in repo:
        repo, _, revision = repo.partition("@")
        joined = f"{revision}/{rest}"
        if special := SPECIAL_REFS_REVISION_REGEX.match(joined):
            revision, rest = special.group(0), joined[len(special.group(0)) + 1 :]
        revision = unquote(revision)
    if not owner or not repo or not rest or "" in rest.split("/") or revision == "":
        raise UserError(f"{text}: expected hf://OWNER/REPO[@REVISION]/PATH")
    return HubRef(f"{owner}/{repo}", rest, revision, repo_type)


def download(ref: HubRef) -> Path:
    """Fetch the file (or take it from the cache) and return its local path."""
    from huggingface_hub import hf_hub_download

    from ft_plugin.hub.calls import hub_error, hub_exceptions

    try:
        return Path(
            hf_hub_download(ref.repo_id, ref.path, revision=ref.revision, repo_type=ref.repo_type)
        )
    except hub_exceptions() as exc:
        raise hub_error(exc, str(ref)) from None


def downloaded_commit(local: Path, ref: HubRef) -> str | None:
    """The commit a file that :func:`download` returned was taken from, or None.

    The Hub cache keeps every file under ``snapshots/<commit>/<path in repo>``, whatever
    branch or tag named it.

    Example:
        >>> ref = parse_hub_ref("hf://team/recipes/medical/qlora.yaml")
        >>> downloaded_commit(Path("/c/snapshots/" + "a" * 40 + "/medical/qlora.yaml"), ref)
        'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'
    """
    snapshot = local
    for _ in ref.path.split("/"):
        snapshot = snapshot.parent
    if snapshot.parent.name == "snapshots" and _COMMIT.fullmatch(snapshot.name):
        return snapshot.name
    return None


def resolve_folder(reference: str) -> Path:
    """A local folder for a run directory path or ``hf://[datasets/]OWNER/REPO[@REV]``.

    From the Hub, only the files a run directory needs come down (:data:`FOLDER_PATTERNS`):
    safetensors, json, yaml and tokenizer files, never code or pickled weights.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        resolve_folder("runs/medical-lora")  # PosixPath('runs/medical-lora')
    """
    if not is_hub_ref(reference):
        folder = Path(reference).expanduser()
        if not folder.is_dir():
            raise UserError(f"{reference}: no such run directory")
        return folder
    from huggingface_hub import snapshot_download

    from ft_plugin.hub.calls import hub_error, hub_exceptions

    ref = parse_hub_ref(reference.rstrip("/") + "/.")
    inside = posixpath.normpath(ref.path)  # "." for the whole repo, else a folder in it
    if inside.startswith(".."):
        raise UserError(f"{reference}: points outside the Hub repo {ref.repo_id}")
    patterns = FOLDER_PATTERNS if inside == "." else [f"{inside}/{p}" for p in FOLDER_PATTERNS]
    try:
        folder = snapshot_download(
            ref.repo_id, revision=ref.revision, repo_type=ref.repo_type, allow_patterns=patterns
        )
    except hub_exceptions() as exc:
        raise hub_error(exc, reference) from None
    return Path(folder) / inside
