"""The in-memory Hub (tests/hub_server.py) driven by the real `huggingface_hub` client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from helpers import require
from hub_server import DEFAULT_TOKEN, HubServer, hub_fixture, run_hub_server
from huggingface_hub import (
    CommitOperationAdd,
    CommitOperationDelete,
    HfApi,
    ModelCard,
    constants,
    hf_hub_download,
    snapshot_download,
)
from huggingface_hub.errors import (
    GatedRepoError,
    HfHubHTTPError,
    RemoteEntryNotFoundError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

pytestmark = [pytest.mark.hub]

hub = hub_fixture()  # a running server with the in-process client pointed at it, per test

README = """---
library_name: peft
tags:
- lora
- medical
base_model: Qwen/Qwen2.5-0.5B
---

# My adapter

Fine-tuned with ft-plugin.
"""


@pytest.fixture
def adapter_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "adapter"
    folder.mkdir()
    (folder / "README.md").write_text(README)
    (folder / "adapter_config.json").write_text(json.dumps({"r": 8, "peft_type": "LORA"}))
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(1_000_000))
    return folder


def test_private_model_roundtrip(hub: HubServer, adapter_dir: Path, tmp_path: Path) -> None:
    api = HfApi()
    url = api.create_repo("test-user/med-lora", private=True)
    assert url.repo_id == "test-user/med-lora" and url.startswith(hub.url)
    assert api.create_repo("test-user/med-lora", private=True, exist_ok=True) == url
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("test-user/med-lora")
    assert exc.value.response.status_code == 409

    info = api.upload_folder(
        repo_id="test-user/med-lora", folder_path=adapter_dir, commit_message="Add adapter"
    )
    assert info.commit_message == "Add adapter" and len(info.oid) == 40
    assert info.commit_url == f"{hub.url}/test-user/med-lora/commit/{info.oid}"

    model = api.model_info("test-user/med-lora")
    assert model.private is True and model.sha == info.oid
    assert model.library_name == "peft"
    assert model.card_data.library_name == "peft"
    assert model.card_data.tags == ["lora", "medical"]
    assert model.card_data.base_model == "Qwen/Qwen2.5-0.5B"
    assert {s.rfilename for s in model.siblings} == {
        ".gitattributes",
        "README.md",
        "adapter_config.json",
        "adapter_model.safetensors",
    }
    card = ModelCard.load("test-user/med-lora")
    assert card.data.library_name == "peft" and card.data.base_model == "Qwen/Qwen2.5-0.5B"
    assert "Fine-tuned with ft-plugin." in card.text

    commits = api.list_repo_commits("test-user/med-lora")
    assert [c.title for c in commits] == ["Add adapter", "initial commit"]
    assert commits[0].commit_id == info.oid and commits[0].authors == ["test-user"]

    assert api.repo_exists("test-user/med-lora")
    assert api.file_exists("test-user/med-lora", "adapter_config.json")
    assert not api.file_exists("test-user/med-lora", "nope.bin")

    weights = (adapter_dir / "adapter_model.safetensors").read_bytes()
    single = Path(hf_hub_download("test-user/med-lora", "adapter_model.safetensors"))
    assert single.read_bytes() == weights
    assert str(single).startswith(str(hub.hf_home))  # the cache is isolated in the server's home
    snap = Path(snapshot_download("test-user/med-lora", local_dir=tmp_path / "snap"))
    assert (snap / "adapter_model.safetensors").read_bytes() == weights
    assert json.loads((snap / "adapter_config.json").read_text())["r"] == 8
    assert sorted(p.name for p in snap.iterdir() if p.is_file()) == sorted(
        s.rfilename for s in model.siblings
    )


def test_dataset_and_space_repos(hub: HubServer, tmp_path: Path) -> None:
    api = HfApi()
    api.create_repo("test-user/med-data", repo_type="dataset", private=False)
    card = "---\nlicense: mit\ntags:\n- medical\n---\n# Data\n"
    api.upload_file(
        path_or_fileobj=card.encode(),
        path_in_repo="README.md",
        repo_id="test-user/med-data",
        repo_type="dataset",
    )
    rows = b'{"q": "a", "a": "b"}\n'
    api.upload_file(
        path_or_fileobj=rows,
        path_in_repo="data/train.jsonl",
        repo_id="test-user/med-data",
        repo_type="dataset",
    )

    info = api.dataset_info("test-user/med-data")
    assert info.private is False and info.card_data.license == "mit"
    assert api.repo_info("test-user/med-data", repo_type="dataset").sha == info.sha
    assert sorted(api.list_repo_files("test-user/med-data", repo_type="dataset")) == [
        ".gitattributes",
        "README.md",
        "data/train.jsonl",
    ]
    # public: readable without a token
    path = hf_hub_download(
        "test-user/med-data", "data/train.jsonl", repo_type="dataset", token=False
    )
    assert Path(path).read_bytes() == rows
    snap = snapshot_download("test-user/med-data", repo_type="dataset", token=False)
    assert (Path(snap) / "data" / "train.jsonl").read_bytes() == rows
    assert hub.read_file("test-user/med-data", "data/train.jsonl", repo_type="dataset") == rows

    url = api.create_repo("test-user/demo", repo_type="space", space_sdk="gradio")
    assert url.repo_type == "space"
    assert api.space_info("test-user/demo").sdk == "gradio"


def test_private_repo_needs_a_valid_token(hub: HubServer) -> None:
    hub.add_repo("test-user/secret", private=True, files={"config.json": "{}"})
    api = HfApi()
    assert api.model_info("test-user/secret").private is True

    with pytest.raises(RepositoryNotFoundError) as exc:
        api.model_info("test-user/secret", token=False)
    assert exc.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("test-user/secret", "config.json", token=False)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("test-user/secret", token=False)
    assert api.repo_exists("test-user/secret", token=False) is False

    with pytest.raises(HfHubHTTPError) as exc:
        api.model_info("test-user/secret", token="hf_invalid")
    assert type(exc.value) is HfHubHTTPError  # not mistaken for "repo not found"
    assert exc.value.response.status_code == 401
    assert exc.value.response.json() == {"error": "Invalid credentials in Authorization header"}

    # writes need a token even on a public repo
    hub.add_repo("test-user/public")
    with pytest.raises(RepositoryNotFoundError):
        api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x", repo_id="test-user/public", token=False
        )
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_repo("test-user/other", token=False)
    assert exc.value.response.status_code == 401
    assert api.whoami()["name"] == "test-user"

    hub.tokens = {
        "hf_other"
    }  # a set: its tokens belong to `hub.user`; the old token is now invalid
    assert api.whoami(token="hf_other")["name"] == "test-user"
    with pytest.raises(HfHubHTTPError) as exc:
        api.model_info("test-user/public", token=DEFAULT_TOKEN)
    assert exc.value.response.status_code == 401


def test_gated_repo_and_missing_things(hub: HubServer) -> None:
    hub.add_repo("test-user/gated", gated=True, files={"w.bin": b"123"})
    with pytest.raises(GatedRepoError):
        hf_hub_download("test-user/gated", "w.bin", token=False)
    with pytest.raises(GatedRepoError):
        hf_hub_download("test-user/gated", "w.bin")
    hub.get_repo("test-user/gated").granted.add("test-user")
    assert Path(hf_hub_download("test-user/gated", "w.bin")).read_bytes() == b"123"

    with pytest.raises(RepositoryNotFoundError):
        HfApi().model_info("test-user/nope")
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("test-user/gated", "w.bin", revision="nope")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download("test-user/gated", "missing.txt")


def test_pr_branches_tags_and_deletions(hub: HubServer) -> None:
    api = HfApi()
    api.create_repo("test-user/m")
    first = api.upload_file(path_or_fileobj=b"v1", path_in_repo="a.txt", repo_id="test-user/m")

    pr = api.upload_file(
        path_or_fileobj=b"v2",
        path_in_repo="a.txt",
        repo_id="test-user/m",
        create_pr=True,
        commit_message="Propose v2",
    )
    assert pr.pr_revision == "refs/pr/1" and pr.pr_num == 1
    assert pr.pr_url == f"{hub.url}/test-user/m/discussions/1"
    assert api.model_info("test-user/m").sha == first.oid  # main did not move
    pr_file = hf_hub_download("test-user/m", "a.txt", revision=pr.pr_revision)
    assert Path(pr_file).read_bytes() == b"v2"
    again = api.upload_file(
        path_or_fileobj=b"v3", path_in_repo="a.txt", repo_id="test-user/m", revision=pr.pr_revision
    )
    refs = api.list_repo_refs("test-user/m", include_pull_requests=True)
    assert [(r.ref, r.target_commit) for r in refs.pull_requests] == [("refs/pr/1", again.oid)]

    api.create_branch("test-user/m", branch="dev")
    with pytest.raises(HfHubHTTPError) as exc:
        api.create_branch("test-user/m", branch="dev")
    assert exc.value.response.status_code == 409
    api.create_branch("test-user/m", branch="dev", exist_ok=True)
    on_dev = api.upload_file(
        path_or_fileobj=b"dev",
        path_in_repo="dev.txt",
        repo_id="test-user/m",
        revision="dev",
        commit_message="Dev only",
    )
    assert "dev.txt" in api.list_repo_files("test-user/m", revision="dev")
    assert "dev.txt" not in api.list_repo_files("test-user/m")
    assert api.file_exists("test-user/m", "dev.txt", revision="dev")
    assert [c.title for c in api.list_repo_commits("test-user/m", revision="dev")][0] == "Dev only"
    with pytest.raises(RevisionNotFoundError):
        api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x", repo_id="test-user/m", revision="nope"
        )

    api.create_tag("test-user/m", tag="v1.0", revision=first.oid)
    refs = api.list_repo_refs("test-user/m")
    assert {b.name for b in refs.branches} == {"main", "dev"}
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0", first.oid)]
    assert Path(hf_hub_download("test-user/m", "a.txt", revision="v1.0")).read_bytes() == b"v1"
    assert api.model_info("test-user/m", revision=on_dev.oid[:10]).sha == on_dev.oid

    api.create_commit(
        "test-user/m",
        operations=[
            CommitOperationAdd("sub/b.txt", b"b"),
            CommitOperationAdd("sub/c.txt", b"c"),
            CommitOperationDelete("a.txt"),
        ],
        commit_message="Restructure",
    )
    assert sorted(api.list_repo_files("test-user/m")) == [
        ".gitattributes",
        "sub/b.txt",
        "sub/c.txt",
    ]
    api.delete_folder("sub", repo_id="test-user/m")
    assert api.list_repo_files("test-user/m") == [".gitattributes"]
    with pytest.raises(RemoteEntryNotFoundError):
        api.delete_file("a.txt", repo_id="test-user/m")

    stale = api.list_repo_commits("test-user/m")[-1].commit_id
    with pytest.raises(HfHubHTTPError) as exc:
        api.upload_file(
            path_or_fileobj=b"x", path_in_repo="x", repo_id="test-user/m", parent_commit=stale
        )
    assert exc.value.response.status_code == 412


def test_tree_pagination_and_no_op_commits(hub: HubServer, tmp_path: Path) -> None:
    hub.page_size = 2
    hub.commits_page_size = 2
    files = {f"d/{i}.txt": str(i) for i in range(5)}
    hub.add_repo("test-user/many", files=files)
    api = HfApi()
    assert sorted(api.list_repo_files("test-user/many")) == sorted([".gitattributes", *files])
    assert hub.count("/tree/", method="GET") == 4  # 6 files + 1 folder, 2 per page
    top = {(type(e).__name__, e.path) for e in api.list_repo_tree("test-user/many")}
    assert top == {("RepoFolder", "d"), ("RepoFile", ".gitattributes")}
    entry = next(iter(api.get_paths_info("test-user/many", ["d/3.txt"], expand=True)))
    assert entry.size == 1 and entry.last_commit.title == "Seed files"
    for i in range(3):
        api.upload_file(
            path_or_fileobj=f"n{i}".encode(), path_in_repo="n.txt", repo_id="test-user/many"
        )
    assert len(api.list_repo_commits("test-user/many")) == 5

    folder = tmp_path / "same"
    folder.mkdir()
    (folder / "n.txt").write_text("n2")  # what main already has
    before = api.model_info("test-user/many").sha
    assert api.upload_folder(repo_id="test-user/many", folder_path=folder).oid == before
    assert hub.count("/commit/") == 3  # the unchanged file was not committed again


def test_lfs_upload_path(hub: HubServer, tmp_path: Path) -> None:
    """With `lfs_threshold`, big files take the LFS batch + PUT path (Xet disabled)."""
    hub.lfs_threshold = 100_000
    api = HfApi()
    api.create_repo("test-user/big")
    blob = os.urandom(300_000)
    api.upload_file(path_or_fileobj=blob, path_in_repo="model.safetensors", repo_id="test-user/big")
    assert hub.count(".git/info/lfs/objects/batch", method="POST") == 1
    assert hub.count("/__lfs__/", method="PUT") == 1
    (entry,) = api.get_paths_info("test-user/big", "model.safetensors")
    assert entry.lfs is not None and entry.lfs.size == len(blob)
    assert Path(hf_hub_download("test-user/big", "model.safetensors")).read_bytes() == blob
    # same content again: no new upload, no new commit
    api.upload_file(path_or_fileobj=blob, path_in_repo="model.safetensors", repo_id="test-user/big")
    assert hub.count("/__lfs__/") == 1 and len(api.list_repo_commits("test-user/big")) == 2


def test_fault_injection_and_client_retries(hub: HubServer) -> None:
    api = HfApi()
    api.create_repo("test-user/flaky")

    # `create_commit` (so upload_file, and upload_folder without hf_xet) POSTs the commit once:
    # huggingface_hub does not retry it, the 503 surfaces.
    hub.fail_next(2, 503, path_contains="/commit/")
    for _ in range(2):
        with pytest.raises(HfHubHTTPError) as exc:
            api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="test-user/flaky")
        assert exc.value.response.status_code == 503
        assert exc.value.response.json() == {"error": "Injected failure"}
    assert hub.count("/commit/", status=503) == 2
    api.upload_file(path_or_fileobj=b"x", path_in_repo="x.txt", repo_id="test-user/flaky")
    assert hub.count("/commit/") == 3
    assert hub.count("/preupload/") == 3  # client-side steps before the commit POST ran each time
    hub.clear_faults()

    # Downloads re-try the HEAD call by themselves when nothing is cached.
    hub.fail_next(1, 503, path_contains="/resolve/", method="HEAD")
    assert Path(hf_hub_download("test-user/flaky", "x.txt")).read_bytes() == b"x"
    assert hub.count("/resolve/", method="HEAD", status=503) == 1


def test_xet_pipeline_retries_the_commit(hub: HubServer, tmp_path: Path) -> None:
    """With hf_xet installed and enabled, upload_folder takes the pipelined path, whose commit
    POST is retried with backoff (1 s first). All-"regular" files never touch Xet storage."""
    require("hf_xet", "a dependency of huggingface_hub on x86_64 and arm64")
    api = HfApi()
    api.create_repo("test-user/flaky")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "y.txt").write_text("y")
    with hub.patched_client(disable_xet=False):
        hub.fail_next(1, 503, path_contains="/commit/")
        api.upload_folder(repo_id="test-user/flaky", folder_path=folder)
    assert hub.read_file("test-user/flaky", "y.txt") == b"y"
    assert [s for m, p, s in hub.requests if "/commit/" in p][-2:] == [503, 200]


def test_patched_client_restores_constants() -> None:
    saved = (constants.ENDPOINT, constants.HUGGINGFACE_CO_URL_TEMPLATE, constants.HF_HUB_OFFLINE)
    saved_env = {k: os.environ.get(k) for k in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE")}
    with run_hub_server() as server, server.patched_client():
        assert server.url == constants.ENDPOINT
        assert constants.HUGGINGFACE_CO_URL_TEMPLATE.startswith(server.url + "/")
        assert constants.HF_HUB_OFFLINE is False and constants.HF_HUB_DISABLE_XET is True
        assert os.environ["HF_TOKEN"] == server.token == DEFAULT_TOKEN
        assert HfApi().endpoint == server.url
    assert saved == (
        constants.ENDPOINT,
        constants.HUGGINGFACE_CO_URL_TEMPLATE,
        constants.HF_HUB_OFFLINE,
    )
    assert {k: os.environ.get(k) for k in saved_env} == saved_env


def test_subprocess_uses_env(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import json, sys
        from huggingface_hub import HfApi, constants, hf_hub_download
        api = HfApi()
        api.create_repo("test-user/from-sub", private=True, exist_ok=True)
        info = api.upload_file(path_or_fileobj=b"hello", path_in_repo="hello.txt",
                               repo_id="test-user/from-sub")
        path = hf_hub_download("test-user/from-sub", "hello.txt")
        print(json.dumps({"endpoint": constants.ENDPOINT, "oid": info.oid,
                          "content": open(path).read(), "cache": path,
                          "private": api.model_info("test-user/from-sub").private}))
        """
    )
    with run_hub_server() as server:
        env = {**os.environ, **server.env()}
        out = subprocess.run(
            [sys.executable, "-c", script],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        assert result["endpoint"] == server.url
        assert result["content"] == "hello" and result["private"] is True
        assert result["cache"].startswith(str(server.hf_home))
        assert server.get_repo("test-user/from-sub").private is True
        assert server.read_file("test-user/from-sub", "hello.txt") == b"hello"

        # without a token the private repo is invisible to the subprocess
        env = {**os.environ, **server.env(token=None)}
        probe = (
            "from huggingface_hub import HfApi; print(HfApi().repo_exists('test-user/from-sub'))"
        )
        out = subprocess.run(
            [sys.executable, "-c", probe],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == "False"


def test_datasets_load_dataset_from_the_server(hub: HubServer) -> None:
    """`datasets` keeps its own import-time copies of the endpoint; patched_client covers them."""
    datasets = require("datasets", "a dependency of ft-plugin")
    rows = '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n'
    hub.add_repo(
        "test-user/rows", repo_type="dataset", private=True, files={"data/train.jsonl": rows}
    )
    loaded = datasets.load_dataset("test-user/rows", split="train")
    assert loaded.num_rows == 2 and loaded[1] == {"instruction": "c", "output": "d"}
    assert str(datasets.config.HF_DATASETS_CACHE).startswith(str(hub.hf_home))
