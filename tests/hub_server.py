"""In-memory, Hub-compatible HTTP server for tests that drive the real `huggingface_hub` client.

Stdlib only (`http.server`, threads; PyYAML, a `huggingface_hub` dependency, parses card front
matter when present). It implements the REST subset `huggingface_hub` 2.x uses to create repos,
commit (regular inline files, plus the legacy LFS batch + PUT path), read repo info, list trees,
commits and refs, and download files (`/resolve/`).

In-process use::

    with run_hub_server() as hub, hub.patched_client():
        HfApi().create_repo("test-user/demo", private=True)   # goes to hub.url

Subprocesses (``python -m ft_plugin ...``)::

    subprocess.run(cmd, env={**os.environ, **hub.env()})

As a fixture in a test module (assign it to the name the tests ask for)::

    hub = hub_fixture()            # server running + client patched, per test

Stand-alone: ``python tests/hub_server.py --port 8765`` prints the url and env, serves until ^C.

Behaviour worth knowing:

- Every new repo gets an "initial commit" with a ``.gitattributes`` file, as on the Hub.
- Tokens: ``server.tokens`` maps token -> user name (a set is accepted too; its tokens belong to
  ``server.user``). Any valid token may read and write every repo. A missing token on a write
  route, or on any read of a private repo, gets 401 + ``X-Error-Code: RepoNotFound`` for repo routes
  (client: `RepositoryNotFoundError`); an unknown token gets 401 "Invalid credentials in
  Authorization header" on every route (client: plain `HfHubHTTPError`, status 401).
- Gated repos (``server.add_repo(..., gated=True)``): reading files needs a token of a user in
  ``repo.granted``; otherwise 401/403 + ``X-Error-Code: GatedRepo`` (client: `GatedRepoError`).
- ``server.lfs_threshold``: None (default) answers every file as "regular" in `/preupload/` so its
  content is sent inline in the NDJSON commit; an int makes files of at least that size "lfs"
  (client must run with Xet disabled, then it uses the LFS batch API and a PUT to this server).
- ``server.fail_next(n, status=503, path_contains="/commit/")`` fails the next n matching requests;
  ``server.requests`` logs ``(method, path, status)`` for every request (path without query).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

DEFAULT_TOKEN = "hf_test_token"
DEFAULT_USER = "test-user"

_TYPE_PLURALS = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_GITATTRIBUTES = (
    b"*.7z filter=lfs diff=lfs merge=lfs -text\n"
    b"*.bin filter=lfs diff=lfs merge=lfs -text\n"
    b"*.gguf filter=lfs diff=lfs merge=lfs -text\n"
    b"*.h5 filter=lfs diff=lfs merge=lfs -text\n"
    b"*.parquet filter=lfs diff=lfs merge=lfs -text\n"
    b"*.pt filter=lfs diff=lfs merge=lfs -text\n"
    b"*.safetensors filter=lfs diff=lfs merge=lfs -text\n"
    b"*.zip filter=lfs diff=lfs merge=lfs -text\n"
)
_FRONT_MATTER = re.compile(r"\A\ufeff?---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.S)


# ---------------------------------------------------------------------------------------------
# Storage model
# ---------------------------------------------------------------------------------------------


def git_blob_sha1(data: bytes) -> str:
    """Git blob id of ``data`` (what the Hub reports as a regular file's oid / ETag)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True)
class FileEntry:
    """One file in one revision. ``lfs_sha256`` is set for files stored through LFS."""

    size: int
    blob_id: str  # git sha1 of the content (regular) or of the LFS pointer file (LFS)
    lfs_sha256: str | None = None

    @property
    def etag(self) -> str:
        return self.lfs_sha256 or self.blob_id


@dataclass
class Commit:
    oid: str
    parent: str | None
    title: str
    message: str
    author: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    gated: bool = False
    granted: set[str] = field(default_factory=set)
    sdk: str | None = None
    created_at: str = field(default_factory=_now)
    refs: dict[str, str] = field(default_factory=dict)  # "refs/heads/main" -> commit oid
    commits: dict[str, Commit] = field(default_factory=dict)
    next_pr: int = 1

    @property
    def url_path(self) -> str:
        return _URL_PREFIX[self.repo_type] + self.repo_id

    def resolve(self, revision: str) -> Commit | None:
        for ref in (f"refs/heads/{revision}", f"refs/tags/{revision}", revision):
            if ref in self.refs:
                return self.commits[self.refs[ref]]
        if revision in self.commits:
            return self.commits[revision]
        if re.fullmatch(r"[0-9a-f]{7,39}", revision):
            found = [c for oid, c in self.commits.items() if oid.startswith(revision)]
            if len(found) == 1:
                return found[0]
        return None

    def history(self, head: Commit) -> list[Commit]:
        out: list[Commit] = []
        commit: Commit | None = head
        while commit is not None:
            out.append(commit)
            commit = self.commits[commit.parent] if commit.parent else None
        return out

    def last_commit_for(self, head: Commit, path: str) -> Commit:
        """The newest commit (from ``head`` back) that changed ``path`` or anything under it."""
        history = self.history(head)

        def view(c: Commit) -> dict[str, FileEntry]:
            return {p: e for p, e in c.files.items() if p == path or p.startswith(path + "/")}

        for commit, parent in zip(history, history[1:] + [None], strict=True):
            if parent is None or view(commit) != view(parent):
                return commit
        return head


class HubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.headers = headers or {}


@dataclass
class _Fault:
    remaining: int
    status: int
    path_contains: str
    method: str | None
    message: str


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class HubServer:
    """An in-memory Hugging Face Hub on ``http://127.0.0.1:<port>``.

    Attributes tests may set: ``tokens`` (token -> user, or a set of tokens), ``user``,
    ``lfs_threshold``, ``page_size`` (tree entries per page), ``commits_page_size``.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tokens: dict[str, str] | set[str] | None = None,
        user: str = DEFAULT_USER,
        hf_home: str | None = None,
    ):
        self.user = user
        self.tokens: dict[str, str] | set[str] = (
            dict(tokens)
            if isinstance(tokens, dict)
            else set(tokens)
            if tokens
            else {DEFAULT_TOKEN: user}
        )
        self.lfs_threshold: int | None = None
        self.page_size = 1000
        self.commits_page_size = 50
        self.repos: dict[tuple[str, str], Repo] = {}
        self.blobs: dict[str, bytes] = {}  # git sha1 -> content (regular files)
        self.lfs_objects: dict[str, bytes] = {}  # sha256 -> content
        self.requests: list[tuple[str, str, int]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.RLock()
        self._commit_counter = 0
        self._host = host
        self._port = port
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._own_home = hf_home is None
        self.hf_home = hf_home

    # -- lifecycle ------------------------------------------------------------------------------

    def start(self) -> HubServer:
        server = self

        class Handler(_Handler):
            hub = server

        self._httpd = ThreadingHTTPServer((self._host, self._port), Handler)
        self._httpd.daemon_threads = True
        self._port = self._httpd.server_address[1]
        if self.hf_home is None:
            self.hf_home = tempfile.mkdtemp(prefix="hub-server-home-")
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._own_home and self.hf_home is not None:
            shutil.rmtree(self.hf_home, ignore_errors=True)
            self.hf_home = None

    def __enter__(self) -> HubServer:
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    @property
    def token(self) -> str:
        """A valid write token (the first one of ``tokens``)."""
        return next(iter(self.tokens))

    # -- client configuration -------------------------------------------------------------------

    def env(self, *, token: str | bool | None = True, disable_xet: bool = True) -> dict[str, str]:
        """Environment variables pointing a fresh process's `huggingface_hub` at this server.

        ``token``: True -> ``self.token``; a string -> that token; None/False -> no token (HF_TOKEN
        is set to "" and the token file lives in the isolated HF_HOME, so none is found).
        """
        assert self.hf_home is not None, "start the server first"
        tok = self.token if token is True else token or ""
        env = {
            "HF_ENDPOINT": self.url,
            "HF_TOKEN": tok,
            "HF_HUB_OFFLINE": "0",
            "HF_DATASETS_OFFLINE": "0",
            "TRANSFORMERS_OFFLINE": "0",
            "HF_HUB_DISABLE_TELEMETRY": "1",
            "HF_HUB_DISABLE_UPDATE_CHECK": "1",
            "HF_HUB_DISABLE_PROGRESS_BARS": "1",
            "HF_HUB_DISABLE_XET": "1" if disable_xet else "0",
            "HF_HOME": self.hf_home,
            "HF_HUB_CACHE": os.path.join(self.hf_home, "hub"),
            "HF_ASSETS_CACHE": os.path.join(self.hf_home, "assets"),
            "HF_XET_CACHE": os.path.join(self.hf_home, "xet"),
            "HF_TOKEN_PATH": os.path.join(self.hf_home, "token"),
            "HF_DATASETS_CACHE": os.path.join(self.hf_home, "datasets"),
        }
        return env

    @contextlib.contextmanager
    def patched_client(
        self, *, token: str | bool | None = True, disable_xet: bool = True
    ) -> Iterator[HubServer]:
        """Point the already-imported `huggingface_hub` (and `datasets`, if imported) at this server.

        `huggingface_hub.constants` reads its env vars at import time, so besides setting the env
        vars of :meth:`env` this patches the module-level values derived from them, the endpoint
        of the module-level `HfApi` behind `huggingface_hub.model_info` & co, and the copies other
        modules took with ``from ..constants import X``. Everything is restored on exit.
        """
        from huggingface_hub import constants, hf_api
        from huggingface_hub.utils import _http

        env = self.env(token=token, disable_xet=disable_xet)
        home = env["HF_HOME"]
        patches: list[tuple[Any, str, Any]] = [
            (constants, "ENDPOINT", self.url),
            (
                constants,
                "HUGGINGFACE_CO_URL_TEMPLATE",
                self.url + "/{repo_id}/resolve/{revision}/{filename}",
            ),
            (constants, "HF_URL_HOSTS", constants.HF_URL_HOSTS | {self._host}),
            (constants, "HF_HUB_OFFLINE", False),
            (constants, "HF_HUB_DISABLE_TELEMETRY", True),
            (constants, "HF_HUB_DISABLE_XET", disable_xet),
            (constants, "HF_HUB_DISABLE_IMPLICIT_TOKEN", False),
            (constants, "HF_HOME", home),
            (constants, "HF_HUB_CACHE", env["HF_HUB_CACHE"]),
            (constants, "HUGGINGFACE_HUB_CACHE", env["HF_HUB_CACHE"]),
            (constants, "HF_ASSETS_CACHE", env["HF_ASSETS_CACHE"]),
            (constants, "HUGGINGFACE_ASSETS_CACHE", env["HF_ASSETS_CACHE"]),
            (constants, "HF_XET_CACHE", env["HF_XET_CACHE"]),
            (constants, "HF_TOKEN_PATH", env["HF_TOKEN_PATH"]),
            (constants, "HF_STORED_TOKENS_PATH", os.path.join(home, "stored_tokens")),
            (hf_api.api, "endpoint", self.url),
            (_http, "_HUB_ORIGINS", _http._HUB_ORIGINS | {_http._url_origin(self.url)}),
        ]
        # Modules that copied a constant at import time (only if they are already imported).
        copies = {
            "huggingface_hub.utils._cache_assets": {"HF_ASSETS_CACHE": env["HF_ASSETS_CACHE"]},
            "huggingface_hub.utils._cache_manager": {"HF_HUB_CACHE": env["HF_HUB_CACHE"]},
            "huggingface_hub.utils._git_credential": {"ENDPOINT": self.url},
            "huggingface_hub.cli.auth": {"ENDPOINT": self.url},
            "datasets.config": {
                "HF_ENDPOINT": self.url,
                "HUB_DATASETS_URL": self.url + "/datasets/{repo_id}/resolve/{revision}/{path}",
                "HF_HUB_OFFLINE": False,
                "HF_DATASETS_OFFLINE": False,
                "HF_CACHE_HOME": home,
                "HF_DATASETS_CACHE": Path(env["HF_DATASETS_CACHE"]),
                "HF_MODULES_CACHE": Path(home, "modules"),
                "DOWNLOADED_DATASETS_PATH": Path(env["HF_DATASETS_CACHE"], "downloads"),
                "EXTRACTED_DATASETS_PATH": Path(env["HF_DATASETS_CACHE"], "downloads", "extracted"),
            },
        }
        for module_name, values in copies.items():
            module = sys.modules.get(module_name)
            if module is None:
                continue
            for name, value in values.items():
                if hasattr(module, name):
                    patches.append((module, name, value))

        saved_attrs = [(obj, name, getattr(obj, name)) for obj, name, _ in patches]
        saved_env = {key: os.environ.get(key) for key in env}
        try:
            os.environ.update(env)
            for obj, name, value in patches:
                setattr(obj, name, value)
            self._reset_client_state()
            yield self
        finally:
            for obj, name, value in reversed(saved_attrs):
                setattr(obj, name, value)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
            self._reset_client_state()

    @staticmethod
    def _reset_client_state() -> None:
        """Drop pooled connections and cached filesystem instances bound to the old endpoint."""
        from huggingface_hub import HfFileSystem
        from huggingface_hub.utils import _http

        _http.close_session()
        HfFileSystem.clear_instance_cache()

    # -- fault injection & request log ----------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        status: int = 503,
        path_contains: str = "",
        *,
        method: str | None = None,
        message: str = "Injected failure",
    ) -> None:
        """Answer the next ``n`` requests whose path contains ``path_contains`` (and whose method
        is ``method``, if given) with ``status`` and a JSON ``{"error": message}`` body."""
        with self._lock:
            self._faults.append(
                _Fault(n, status, path_contains, method and method.upper(), message)
            )

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def count(
        self, path_contains: str = "", *, method: str | None = None, status: int | None = None
    ) -> int:
        """How many logged requests match."""
        with self._lock:
            return sum(
                1
                for m, p, s in self.requests
                if path_contains in p
                and (method is None or m == method.upper())
                and (status is None or s == status)
            )

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        with self._lock:
            for fault in self._faults:
                if (
                    fault.remaining > 0
                    and fault.path_contains in path
                    and (fault.method is None or fault.method == method)
                ):
                    fault.remaining -= 1
                    return fault
            self._faults = [f for f in self._faults if f.remaining > 0]
        return None

    # -- direct state access (seeding and assertions without HTTP) -----------------------------

    def add_repo(
        self,
        repo_id: str,
        *,
        repo_type: str = "model",
        private: bool = False,
        gated: bool = False,
        files: dict[str, bytes | str] | None = None,
        commit_message: str = "Seed files",
        sdk: str | None = None,
    ) -> Repo:
        """Create a repo (with its initial commit) and optionally commit ``files`` to main."""
        with self._lock:
            repo = self._create_repo(repo_type, repo_id, private=private, sdk=sdk, author=self.user)
            repo.gated = gated
            if files:
                entries = {p: self._store_regular(_as_bytes(d)) for p, d in files.items()}
                head = repo.resolve("main")
                assert head is not None
                self._new_commit(
                    repo,
                    "refs/heads/main",
                    head,
                    {**head.files, **entries},
                    commit_message,
                    "",
                    self.user,
                )
            return repo

    def get_repo(self, repo_id: str, repo_type: str = "model") -> Repo | None:
        return self.repos.get((repo_type, repo_id))

    def read_file(
        self, repo_id: str, path: str, *, revision: str = "main", repo_type: str = "model"
    ) -> bytes:
        repo = self.repos[(repo_type, repo_id)]
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return self._content(commit.files[path])

    def list_files(
        self, repo_id: str, *, revision: str = "main", repo_type: str = "model"
    ) -> list[str]:
        repo = self.repos[(repo_type, repo_id)]
        commit = repo.resolve(revision)
        if commit is None:
            raise KeyError(revision)
        return sorted(commit.files)

    # -- storage helpers ------------------------------------------------------------------------

    def _store_regular(self, data: bytes) -> FileEntry:
        oid = git_blob_sha1(data)
        self.blobs[oid] = data
        return FileEntry(size=len(data), blob_id=oid)

    def _lfs_entry(self, sha256: str, size: int) -> FileEntry:
        pointer = f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n"
        return FileEntry(size=size, blob_id=git_blob_sha1(pointer.encode()), lfs_sha256=sha256)

    def _content(self, entry: FileEntry) -> bytes:
        if entry.lfs_sha256 is not None:
            return self.lfs_objects[entry.lfs_sha256]
        return self.blobs[entry.blob_id]

    def _create_repo(
        self, repo_type: str, repo_id: str, *, private: bool, sdk: str | None, author: str
    ) -> Repo:
        key = (repo_type, repo_id)
        if key in self.repos:
            raise HubError(409, f"You already created this {repo_type} repo", headers={})
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, sdk=sdk)
        files = {".gitattributes": self._store_regular(_GITATTRIBUTES)}
        if repo_type == "space":
            readme = f"---\ntitle: {repo_id.split('/')[-1]}\nsdk: {sdk or 'gradio'}\n---\n"
            files["README.md"] = self._store_regular(readme.encode())
        self._new_commit(repo, "refs/heads/main", None, files, "initial commit", "", author)
        self.repos[key] = repo
        return repo

    def _new_commit(
        self,
        repo: Repo,
        ref: str,
        parent: Commit | None,
        files: dict[str, FileEntry],
        title: str,
        description: str,
        author: str,
    ) -> Commit:
        self._commit_counter += 1
        listing = json.dumps(
            {
                "parent": parent.oid if parent else None,
                "title": title,
                "files": sorted((p, e.blob_id) for p, e in files.items()),
                "n": self._commit_counter,
                "t": time.time(),
            }
        )
        oid = hashlib.sha1(listing.encode()).hexdigest()
        message = title if not description else f"{title}\n\n{description}"
        commit = Commit(oid, parent.oid if parent else None, title, message, author, _now(), files)
        repo.commits[oid] = commit
        repo.refs[ref] = oid
        return commit

    # -- auth & lookup --------------------------------------------------------------------------

    def _user_for(self, authorization: str | None) -> str | None:
        """None when anonymous; raises 401 for an unknown token."""
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise HubError(401, "Invalid credentials in Authorization header")
        if isinstance(self.tokens, dict):
            user = self.tokens.get(token)
        else:
            user = self.user if token in self.tokens else None
        if user is None:
            raise HubError(401, "Invalid credentials in Authorization header")
        return user

    def _repo_for_read(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and user is None):
            status = 401 if user is None else 404
            raise HubError(status, "Repository not found", code="RepoNotFound")
        return repo

    def _repo_for_write(self, repo_type: str, repo_id: str, user: str | None) -> Repo:
        if user is None:
            raise HubError(401, "Repository not found", code="RepoNotFound")
        return self._repo_for_read(repo_type, repo_id, user)

    def _revision(self, repo: Repo, revision: str) -> Commit:
        commit = repo.resolve(revision)
        if commit is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return commit

    # -- JSON views -----------------------------------------------------------------------------

    def _card_data(self, commit: Commit) -> dict[str, Any] | None:
        entry = commit.files.get("README.md")
        if entry is None:
            return None
        match = _FRONT_MATTER.match(self._content(entry).decode("utf-8", errors="replace"))
        if match is None:
            return None
        try:
            import yaml
        except ImportError:  # pragma: no cover - PyYAML ships with huggingface_hub
            return None
        try:
            data = yaml.safe_load(match.group(1))
        except yaml.YAMLError:
            return None
        return data if isinstance(data, dict) else None

    def _repo_json(self, repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
        card = self._card_data(commit)
        tags = list(card.get("tags") or []) if card else []
        tags = [t for t in tags if isinstance(t, str)]
        head = repo.resolve("main")
        siblings = []
        for path in sorted(commit.files):
            entry = commit.files[path]
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.blob_id)
                if entry.lfs_sha256:
                    sibling["lfs"] = {
                        "size": entry.size,
                        "sha256": entry.lfs_sha256,
                        "pointerSize": 134,
                    }
            siblings.append(sibling)
        data: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo.repo_type}/{repo.repo_id}".encode()).hexdigest()[:24],
            "id": repo.repo_id,
            "author": repo.repo_id.split("/")[0],
            "sha": commit.oid,
            "lastModified": (head or commit).date,
            "createdAt": repo.created_at,
            "private": repo.private,
            "gated": "auto" if repo.gated else False,
            "disabled": False,
            "likes": 0,
            "tags": tags,
            "siblings": siblings,
            "usedStorage": sum(e.size for e in commit.files.values()),
        }
        if card is not None:
            data["cardData"] = card
        if repo.repo_type == "model":
            data["downloads"] = 0
            data["spaces"] = []
            library = card.get("library_name") if card else None
            if isinstance(library, str):
                data["library_name"] = library
                if library not in tags:
                    tags.append(library)
            if card and isinstance(card.get("pipeline_tag"), str):
                data["pipeline_tag"] = card["pipeline_tag"]
            config = commit.files.get("config.json")
            if config is not None:
                with contextlib.suppress(ValueError):
                    cfg = json.loads(self._content(config))
                    if isinstance(cfg, dict):
                        data["config"] = {
                            k: cfg[k] for k in ("architectures", "model_type") if k in cfg
                        }
        elif repo.repo_type == "dataset":
            data["downloads"] = 0
        else:
            data["sdk"] = repo.sdk
            data["subdomain"] = repo.repo_id.replace("/", "-").lower()
        return data

    def _tree_entry(self, repo: Repo, head: Commit, path: str, expand: bool) -> dict[str, Any]:
        entry = head.files.get(path)
        if entry is not None:
            out: dict[str, Any] = {
                "type": "file",
                "oid": entry.blob_id,
                "size": entry.size,
                "path": path,
            }
            if entry.lfs_sha256:
                out["lfs"] = {"oid": entry.lfs_sha256, "size": entry.size, "pointerSize": 134}
        else:
            under = sorted(
                (p, e.blob_id) for p, e in head.files.items() if p.startswith(path + "/")
            )
            tree_oid = hashlib.sha1(json.dumps(under).encode()).hexdigest()
            out = {"type": "directory", "oid": tree_oid, "size": 0, "path": path}
        if expand:
            last = repo.last_commit_for(head, path)
            out["lastCommit"] = {"id": last.oid, "title": last.title, "date": last.date}
        return out

    @staticmethod
    def _dirs(files: dict[str, FileEntry]) -> set[str]:
        dirs: set[str] = set()
        for path in files:
            parts = path.split("/")[:-1]
            for i in range(1, len(parts) + 1):
                dirs.add("/".join(parts[:i]))
        return dirs

    def _commit_json(self, commit: Commit, formatted: bool) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": commit.oid,
            "title": commit.title,
            "message": commit.message,
            "authors": [{"user": commit.author, "avatar": ""}],
            "date": commit.date,
        }
        if formatted:
            out["formatted"] = {"title": commit.title, "message": commit.message}
        return out

    # -- request handling -----------------------------------------------------------------------

    def handle(self, req: _Request) -> _Response:
        """Route one request (called by the HTTP handler threads)."""
        fault = self._take_fault(req.method, req.path)
        if fault is not None:
            return _json_response(fault.status, {"error": fault.message})
        try:
            with self._lock:
                return self._route(req)
        except HubError as err:
            headers = {"X-Error-Message": err.message, **err.headers}
            if err.code:
                headers["X-Error-Code"] = err.code
            return _json_response(err.status, {"error": err.message}, headers)

    def _route(self, req: _Request) -> _Response:
        segs = req.segments
        user = self._user_for(req.headers.get("authorization"))
        method = req.method
        if segs[:1] == ["api"]:
            rest = segs[1:]
            if rest == ["whoami-v2"] and method == "GET":
                return self._whoami(user)
            if rest == ["validate-yaml"] and method == "POST":
                return self._validate_yaml(req)
            if rest == ["repos", "create"] and method == "POST":
                return self._api_create_repo(req, user)
            if rest == ["repos", "delete"] and method == "DELETE":
                return self._api_delete_repo(req, user)
            if len(rest) >= 3 and rest[0] in _TYPE_PLURALS:
                repo_type = _TYPE_PLURALS[rest[0]]
                repo_id = f"{rest[1]}/{rest[2]}"
                return self._repo_api(req, user, repo_type, repo_id, rest[3:])
            raise HubError(404, "Not Found")
        if segs[:1] == ["__lfs__"] and len(segs) == 2 and method == "PUT":
            return self._lfs_put(req, segs[1])
        repo_type = "model"
        if segs and segs[0] in ("datasets", "spaces"):
            repo_type = _TYPE_PLURALS[segs[0]]
            segs = segs[1:]
        if len(segs) >= 5 and segs[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(
                req, user, repo_type, f"{segs[0]}/{segs[1]}", segs[3], "/".join(segs[4:])
            )
        if (
            len(segs) == 6
            and segs[1].endswith(".git")
            and segs[2:] == ["info", "lfs", "objects", "batch"]
            and method == "POST"
        ):
            return self._lfs_batch(req, user, repo_type, f"{segs[0]}/{segs[1][: -len('.git')]}")
        raise HubError(404, "Not Found")

    def _whoami(self, user: str | None) -> _Response:
        if user is None:
            raise HubError(401, "Invalid username or password.")
        return _json_response(
            200,
            {
                "type": "user",
                "id": hashlib.sha1(user.encode()).hexdigest()[:24],
                "name": user,
                "fullname": user,
                "avatarUrl": f"/avatars/{user}.svg",  # Gradio's local sign-in reads it
                "email": f"{user}@example.com",
                "emailVerified": True,
                "isPro": False,
                "orgs": [],
                "auth": {
                    "type": "access_token",
                    "accessToken": {"displayName": "test", "role": "write"},
                },
            },
        )

    def _validate_yaml(self, req: _Request) -> _Response:
        content = req.json().get("content", "")
        match = _FRONT_MATTER.match(content)
        if match is not None:
            import yaml

            try:
                yaml.safe_load(match.group(1))
            except yaml.YAMLError as exc:
                message = f"Invalid YAML: {exc}"
                return _json_response(400, {"error": message, "errors": [{"message": message}]})
        return _json_response(200, {"errors": [], "warnings": []})

    def _api_create_repo(self, req: _Request, user: str | None) -> _Response:
        if user is None:
            raise HubError(401, "Invalid username or password.")
        body = req.json()
        repo_type = body.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Invalid repo type: {repo_type}")
        name = body.get("name")
        if not name or "/" in name:
            raise HubError(400, f"Invalid repo name: {name!r}")
        repo_id = f"{body.get('organization') or user}/{name}"
        visibility = body.get("visibility")
        private = visibility == "private" if visibility is not None else bool(body.get("private"))
        if repo_type == "space" and not body.get("sdk"):
            raise HubError(400, "Spaces need an sdk")
        key = (repo_type, repo_id)
        url = f"{self.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        if key in self.repos:
            return _json_response(
                409,
                {"error": f"You already created this {repo_type} repo", "url": url},
                {"X-Error-Message": f"You already created this {repo_type} repo"},
            )
        self._create_repo(repo_type, repo_id, private=private, sdk=body.get("sdk"), author=user)
        return _json_response(200, {"url": url, "name": repo_id, "id": repo_id})

    def _api_delete_repo(self, req: _Request, user: str | None) -> _Response:
        body = req.json()
        repo_type = body.get("type") or "model"
        repo_id = f"{body.get('organization') or user}/{body.get('name')}"
        self._repo_for_write(repo_type, repo_id, user)
        del self.repos[(repo_type, repo_id)]
        return _json_response(200, {})

    def _repo_api(
        self, req: _Request, user: str | None, repo_type: str, repo_id: str, rest: list[str]
    ) -> _Response:
        method = req.method
        if not rest and method == "GET":
            repo = self._repo_for_read(repo_type, repo_id, user)
            return _json_response(
                200, self._repo_json(repo, self._revision(repo, "main"), req.flag("blobs"))
            )
        if len(rest) == 2 and rest[0] == "revision" and method == "GET":
            repo = self._repo_for_read(repo_type, repo_id, user)
            commit = self._revision(repo, rest[1])
            return _json_response(200, self._repo_json(repo, commit, req.flag("blobs")))
        if len(rest) >= 2 and rest[0] == "tree" and method == "GET":
            repo = self._repo_for_read(repo_type, repo_id, user)
            return self._tree(req, repo, self._revision(repo, rest[1]), "/".join(rest[2:]))
        if len(rest) == 2 and rest[0] == "paths-info" and method == "POST":
            repo = self._repo_for_read(repo_type, repo_id, user)
            return self._paths_info(req, repo, self._revision(repo, rest[1]))
        if len(rest) == 2 and rest[0] == "commits" and method == "GET":
            repo = self._repo_for_read(repo_type, repo_id, user)
            commit = self._revision(repo, rest[1])
            formatted = "formatted" in req.query.get("expand[]", [])
            items = [self._commit_json(c, formatted) for c in repo.history(commit)]
            return self._paginated(req, items, self.commits_page_size)
        if rest == ["refs"] and method == "GET":
            repo = self._repo_for_read(repo_type, repo_id, user)
            return self._refs(req, repo)
        if len(rest) == 2 and rest[0] == "branch" and method in ("POST", "DELETE"):
            repo = self._repo_for_write(repo_type, repo_id, user)
            return self._branch(req, repo, rest[1])
        if len(rest) == 2 and rest[0] == "tag" and method in ("POST", "DELETE"):
            repo = self._repo_for_write(repo_type, repo_id, user)
            return self._tag(req, repo, rest[1])
        if len(rest) == 2 and rest[0] == "preupload" and method == "POST":
            repo = self._repo_for_write(repo_type, repo_id, user)
            return self._preupload(req, repo, rest[1])
        if len(rest) == 2 and rest[0] == "commit" and method == "POST":
            repo = self._repo_for_write(repo_type, repo_id, user)
            assert user is not None
            return self._commit(req, repo, rest[1], user)
        if rest == ["settings"] and method == "PUT":
            repo = self._repo_for_write(repo_type, repo_id, user)
            body = req.json()
            if "visibility" in body:
                repo.private = body["visibility"] == "private"
            elif "private" in body:
                repo.private = bool(body["private"])
            if "gated" in body:
                repo.gated = body["gated"] not in (False, None, "false")
            return _json_response(200, {})
        raise HubError(404, "Not Found")

    def _paginated(self, req: _Request, items: list[Any], page_size: int) -> _Response:
        start = int(req.query.get("cursor", ["0"])[0] or 0)
        page = items[start : start + page_size]
        headers = {}
        if start + page_size < len(items):
            query = {k: v[-1] for k, v in req.query.items()}
            query["cursor"] = str(start + page_size)
            headers["Link"] = f'<{self.url}{req.raw_path}?{urlencode(query)}>; rel="next"'
        return _json_response(200, page, headers)

    def _tree(self, req: _Request, repo: Repo, head: Commit, path: str) -> _Response:
        path = path.strip("/")
        recursive = req.flag("recursive")
        expand = req.flag("expand")
        dirs = self._dirs(head.files)
        if path and path not in dirs:
            raise HubError(
                404,
                f"{path} does not exist on {repo.repo_id}",
                code="EntryNotFound",
                headers={"X-Repo-Commit": head.oid},
            )
        prefix = path + "/" if path else ""
        names = [p for p in (*head.files, *dirs) if p.startswith(prefix) and p != path]
        if not recursive:
            names = [p for p in names if "/" not in p[len(prefix) :]]
        names.sort(key=lambda p: (p not in dirs, p))
        items = [self._tree_entry(repo, head, p, expand) for p in names]
        return self._paginated(req, items, 50 if expand else self.page_size)

    def _paths_info(self, req: _Request, repo: Repo, head: Commit) -> _Response:
        ctype = req.headers.get("content-type", "")
        if "json" in ctype:
            body = req.json()
            paths = body.get("paths", [])
            expand = bool(body.get("expand"))
        else:
            form = parse_qs(req.body.decode(), keep_blank_values=True)
            paths = form.get("paths", [])
            expand = form.get("expand", ["False"])[-1].lower() in ("1", "true")
        dirs = self._dirs(head.files)
        out = [
            self._tree_entry(repo, head, p.strip("/"), expand)
            for p in paths
            if p.strip("/") in head.files or p.strip("/") in dirs
        ]
        return _json_response(200, out)

    def _refs(self, req: _Request, repo: Repo) -> _Response:
        def items(prefix: str, short: bool) -> list[dict[str, str]]:
            return [
                {"name": ref[len(prefix) :] if short else ref, "ref": ref, "targetCommit": oid}
                for ref, oid in sorted(repo.refs.items())
                if ref.startswith(prefix)
            ]

        data: dict[str, Any] = {
            "branches": items("refs/heads/", True),
            "converts": items("refs/convert/", True),
            "tags": items("refs/tags/", True),
        }
        if req.flag("include_prs"):
            data["pullRequests"] = items("refs/pr/", False)
        return _json_response(200, data)

    def _branch(self, req: _Request, repo: Repo, branch: str) -> _Response:
        ref = f"refs/heads/{branch}"
        if req.method == "DELETE":
            if ref not in repo.refs:
                raise HubError(404, f"Invalid rev id: {branch}", code="RevisionNotFound")
            if branch == "main":
                raise HubError(403, "Cannot delete the default branch")
            del repo.refs[ref]
            return _json_response(200, {})
        if ref in repo.refs:
            raise HubError(409, f"Reference already exists: {ref}")
        start = (req.json() if req.body else {}).get("startingPoint") or "main"
        repo.refs[ref] = self._revision(repo, start).oid
        return _json_response(200, {})

    def _tag(self, req: _Request, repo: Repo, rev_or_tag: str) -> _Response:
        if req.method == "DELETE":
            ref = f"refs/tags/{rev_or_tag}"
            if ref not in repo.refs:
                raise HubError(404, f"Invalid rev id: {rev_or_tag}", code="RevisionNotFound")
            del repo.refs[ref]
            return _json_response(200, {})
        tag = req.json().get("tag")
        ref = f"refs/tags/{tag}"
        if ref in repo.refs:
            raise HubError(409, f"Tag already exists: {tag}")
        repo.refs[ref] = self._revision(repo, rev_or_tag).oid
        return _json_response(200, {})

    def _preupload(self, req: _Request, repo: Repo, revision: str) -> _Response:
        head = repo.resolve(revision)
        if head is None and not req.flag("create_pr"):
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        files = []
        for item in req.json().get("files", []):
            path, size = item["path"], int(item.get("size", 0))
            lfs = self.lfs_threshold is not None and size >= self.lfs_threshold
            existing = head.files.get(path) if head is not None else None
            files.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.etag if existing is not None else None,
                }
            )
        return _json_response(200, {"files": files, "commitOid": head.oid if head else None})

    def _commit(self, req: _Request, repo: Repo, revision: str, user: str) -> _Response:
        create_pr = req.flag("create_pr")
        lines = [json.loads(line) for line in req.body.decode().splitlines() if line.strip()]
        header = next((ln["value"] for ln in lines if ln.get("key") == "header"), None)
        if header is None or not header.get("summary"):
            raise HubError(400, "Missing commit header (summary)")
        if create_pr:
            ref = f"refs/pr/{repo.next_pr}"
            base = self._revision(repo, revision)
        else:  # only branches and open PRs can move
            ref = f"refs/heads/{revision}"
            if ref not in repo.refs and revision.startswith("refs/pr/") and revision in repo.refs:
                ref = revision
            if ref not in repo.refs:
                raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
            base = repo.commits[repo.refs[ref]]
        parent_commit = header.get("parentCommit")
        if parent_commit:
            parent = repo.resolve(parent_commit)
            if parent is None:
                raise HubError(404, f"Invalid rev id: {parent_commit}", code="RevisionNotFound")
            if create_pr:
                base = parent
            elif parent.oid != base.oid:
                raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(base.files)
        for line in lines:
            key, value = line.get("key"), line.get("value", {})
            if key == "file":
                if value.get("encoding", "base64") != "base64":
                    raise HubError(400, f"Unsupported encoding {value.get('encoding')}")
                files[value["path"]] = self._store_regular(base64.b64decode(value["content"]))
            elif key == "lfsFile":
                oid = value["oid"]
                if oid not in self.lfs_objects:
                    raise HubError(422, f"LFS object {oid} for {value['path']} was not uploaded")
                files[value["path"]] = self._lfs_entry(oid, len(self.lfs_objects[oid]))
            elif key == "deletedFile":
                if value["path"] not in files:
                    raise HubError(
                        404,
                        f"A file with this name doesn't exist: {value['path']}",
                        code="EntryNotFound",
                    )
                del files[value["path"]]
            elif key == "deletedFolder":
                prefix = value["path"].rstrip("/") + "/"
                doomed = [p for p in files if p.startswith(prefix)]
                if not doomed:
                    raise HubError(
                        404,
                        f"A folder with this name doesn't exist: {value['path']}",
                        code="EntryNotFound",
                    )
                for p in doomed:
                    del files[p]
            elif key != "header":
                raise HubError(400, f"Unknown commit operation {key!r}")
        summary, description = header["summary"], header.get("description") or ""
        commit = self._new_commit(repo, ref, base, files, summary, description, user)
        out: dict[str, Any] = {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{self.url}/{repo.url_path}/commit/{commit.oid}",
            "hookOutput": "",
        }
        if create_pr:
            out["pullRequestUrl"] = f"{self.url}/{repo.url_path}/discussions/{repo.next_pr}"
            repo.next_pr += 1
        return _json_response(200, out)

    def _resolve(
        self,
        req: _Request,
        user: str | None,
        repo_type: str,
        repo_id: str,
        revision: str,
        path: str,
    ) -> _Response:
        repo = self._repo_for_read(repo_type, repo_id, user)
        if repo.gated and (user is None or user not in repo.granted):
            raise HubError(
                401 if user is None else 403,
                f"Access to model {repo_id} is restricted.",
                code="GatedRepo",
            )
        commit = self._revision(repo, revision)
        entry = commit.files.get(path)
        if entry is None:
            raise HubError(
                404, "Entry not found", code="EntryNotFound", headers={"X-Repo-Commit": commit.oid}
            )
        data = self._content(entry)
        headers = {
            "X-Repo-Commit": commit.oid,
            "ETag": f'"{entry.etag}"',
            "Accept-Ranges": "bytes",
            "Content-Type": "application/octet-stream",
        }
        if entry.lfs_sha256:
            headers["X-Linked-Etag"] = f'"{entry.lfs_sha256}"'
            headers["X-Linked-Size"] = str(entry.size)
        status = 200
        range_header = req.headers.get("range")
        if range_header and req.method == "GET":
            match = re.fullmatch(r"bytes=(\d*)-(\d*)", range_header.strip())
            if match is None or (not match.group(1) and not match.group(2)):
                raise HubError(416, "Invalid range")
            if match.group(1):
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
            else:
                start, end = max(len(data) - int(match.group(2)), 0), len(data) - 1
            if start >= len(data):
                return _Response(416, {"Content-Range": f"bytes */{len(data)}", **headers}, b"")
            end = min(end, len(data) - 1)
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            data = data[start : end + 1]
            status = 206
        return _Response(status, headers, data)

    def _lfs_batch(
        self, req: _Request, user: str | None, repo_type: str, repo_id: str
    ) -> _Response:
        self._repo_for_write(repo_type, repo_id, user)
        body = req.json()
        if body.get("operation") != "upload":
            raise HubError(400, "Only the upload operation is implemented")
        objects = []
        for obj in body.get("objects", []):
            item: dict[str, Any] = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs_objects:
                item["actions"] = {
                    "upload": {"href": f"{self.url}/__lfs__/{obj['oid']}", "header": {}}
                }
            objects.append(item)
        return _json_response(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, req: _Request, oid: str) -> _Response:
        if hashlib.sha256(req.body).hexdigest() != oid:
            raise HubError(400, "LFS upload does not match its oid")
        self.lfs_objects[oid] = req.body
        return _Response(200, {}, b"")


# ---------------------------------------------------------------------------------------------
# HTTP plumbing
# ---------------------------------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    raw_path: str  # still percent-encoded, no query
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    body: bytes

    @property
    def path(self) -> str:
        return self.raw_path

    @property
    def segments(self) -> list[str]:
        return [unquote(s) for s in self.raw_path.split("/") if s]

    def json(self) -> dict[str, Any]:
        if not self.body:
            return {}
        try:
            data = json.loads(self.body)
        except ValueError as exc:
            raise HubError(400, f"Invalid JSON body: {exc}") from None
        return data if isinstance(data, dict) else {}

    def flag(self, name: str) -> bool:
        values = self.query.get(name)
        return bool(values) and values[-1].lower() in ("1", "true", "yes")


@dataclass
class _Response:
    status: int
    headers: dict[str, str]
    body: bytes


def _json_response(status: int, data: Any, headers: dict[str, str] | None = None) -> _Response:
    return _Response(
        status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(data).encode()
    )


def _as_bytes(data: bytes | str) -> bytes:
    return data.encode() if isinstance(data, str) else data


class _Handler(BaseHTTPRequestHandler):
    hub: HubServer
    protocol_version = "HTTP/1.1"
    timeout = 30  # idle keep-alive connections end instead of pinning a thread forever
    disable_nagle_algorithm = True  # headers and body go out in separate writes: no 40 ms stalls

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline().strip():
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        req = _Request(
            method=self.command,
            raw_path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers={k.lower(): v for k, v in self.headers.items()},
            body=self._read_body(),
        )
        try:
            resp = self.hub.handle(req)
        except Exception as exc:  # a server bug: answer 500 rather than dropping the connection
            resp = _json_response(500, {"error": f"{type(exc).__name__}: {exc}"})
        with self.hub._lock:
            self.hub.requests.append((req.method, req.raw_path, resp.status))
        self.send_response(resp.status)
        for name, value in resp.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(resp.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(resp.body)

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = _dispatch  # noqa: N815


# ---------------------------------------------------------------------------------------------
# Entry points
# ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def run_hub_server(**kwargs: Any) -> Iterator[HubServer]:
    """Start a :class:`HubServer` on a free port; stop it (and drop its HF_HOME) on exit."""
    server = HubServer(**kwargs).start()
    try:
        yield server
    finally:
        server.stop()


def hub_fixture(*, patch_client: bool = True, **kwargs: Any) -> Any:
    """A pytest fixture (function scope) yielding a running :class:`HubServer`.

    Assign it in a test module: ``hub = hub_fixture()``; tests then take ``hub`` as an argument.
    With ``patch_client`` the in-process client is pointed at the server for the whole test.
    """
    import pytest

    @pytest.fixture
    def _fixture() -> Iterator[HubServer]:
        with run_hub_server(**kwargs) as server:
            if patch_client:
                with server.patched_client():
                    yield server
            else:
                yield server

    return _fixture


def quote_revision(revision: str) -> str:
    """How the client puts a revision into a URL path (``refs/pr/1`` -> ``refs%2Fpr%2F1``)."""
    return quote(revision, safe="")


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Serve an in-memory Hugging Face Hub.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--user", default=DEFAULT_USER)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # still stop cleanly (drops HF_HOME)
    with run_hub_server(
        host=args.host, port=args.port, tokens={args.token: args.user}, user=args.user
    ) as hub:
        print(json.dumps({"url": hub.url, "env": hub.env()}), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(3600)


if __name__ == "__main__":
    main()
