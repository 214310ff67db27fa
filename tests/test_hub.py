"""Publishing and hf:// loading against the in-memory Hub, with the real huggingface_hub client."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_recipe
from hub_server import HubServer, hub_fixture
from huggingface_hub import HfApi, ModelCard, snapshot_download
from huggingface_hub.errors import RepositoryNotFoundError
from tiny import save_tiny_model

from ft_plugin.config import load_recipe
from ft_plugin.errors import UserError
from ft_plugin.hub.publish import push_run
from ft_plugin.train import train

hub = hub_fixture()
BASE = "test-user/tiny-base"


def publish_base(tmp_path: Path) -> None:
    folder = save_tiny_model(tmp_path / "base-src")
    HfApi().create_repo(BASE, exist_ok=True)
    HfApi().upload_folder(repo_id=BASE, folder_path=str(folder))


def trained_run(tmp_path: Path, **overrides: object) -> Path:
    publish_base(tmp_path)
    loaded = tiny_recipe(
        tmp_path, "lora", extra="val_set_size: 4\ndomain: medical\n", base_model=BASE, **overrides
    )
    run = train(loaded, str(tmp_path / "run")).run_dir
    from ft_plugin.evaluate.report import write_eval_report
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation

    report, results, _, data = run_evaluation(
        str(run), EvalSettings(baseline=True, metrics=["perplexity"])
    )
    write_eval_report(
        report.to_dict(),
        run / "eval",
        results=results,
        labels=None,
        trainer_state=run / "trainer_state.json",
    )
    return run


def test_push_creates_a_private_repo_with_a_complete_card(hub: HubServer, tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    result = push_run(run, "test-user/tiny-lora")
    assert result.changed
    api = HfApi()
    info = api.model_info("test-user/tiny-lora")
    assert info.private is True
    files = set(api.list_repo_files("test-user/tiny-lora"))
    assert {"adapter_config.json", "adapter_model.safetensors", "README.md", "recipe.yaml", "metrics.json",
            "tokenizer_config.json", "eval/report.json", "eval/training_curves.png"} <= files  # fmt: skip
    assert "training_args.bin" not in files
    card = ModelCard.load("test-user/tiny-lora")
    data = card.data.to_dict()
    assert data["base_model"] == BASE and data["library_name"] == "peft"
    assert data["pipeline_tag"] == "text-generation"
    assert {"ft-plugin", "lora", "medical", "trl", "sft"} <= set(data["tags"])
    assert "datasets" not in data, "local dataset paths never reach the card"
    assert data["model-index"][0]["results"][0]["metrics"][0]["type"] == "perplexity"
    for section in (
        "## Intended use and limits",
        "## Training metrics",
        "## Evaluation",
        "## Usage",
        "## Framework versions",
    ):
        assert section in card.text, section
    card.validate()  # the Hub's own YAML validation endpoint
    adapter_config = json.loads(
        Path(api.hf_hub_download("test-user/tiny-lora", "adapter_config.json")).read_text()
    )
    assert adapter_config["base_model_name_or_path"] == BASE


def test_pushing_the_same_run_twice_makes_no_second_commit(hub: HubServer, tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    push_run(run, "test-user/twice")
    commits = len(HfApi().list_repo_commits("test-user/twice"))
    with pytest.raises(UserError, match="already exists on the Hub; pass --overwrite"):
        push_run(run, "test-user/twice")  # an existing repo needs an explicit overwrite
    again = push_run(run, "test-user/twice", overwrite=True)
    assert not again.changed and not again.made_private
    assert len(HfApi().list_repo_commits("test-user/twice")) == commits


def test_transient_503_is_retried(hub: HubServer, tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    commit_path = "/api/models/test-user/retried/commit/"
    hub.fail_next(2, status=503, path_contains=commit_path)
    result = push_run(run, "test-user/retried", retry_delay=0.01)
    assert result.changed
    assert hub.count(commit_path, status=503) == 2 and hub.count(commit_path, status=200) == 1


def test_a_pushed_adapter_loads_for_anyone_with_peft(hub: HubServer, tmp_path: Path) -> None:
    from peft import AutoPeftModelForCausalLM, PeftModel
    from transformers import AutoModelForCausalLM

    run = trained_run(tmp_path)
    push_run(run, "test-user/loadable", private=False)
    snapshot = snapshot_download("test-user/loadable")
    ids = torch.tensor([[3, 4, 5, 6]])
    base = AutoModelForCausalLM.from_pretrained(snapshot_download(BASE))
    with torch.no_grad():
        before = base(ids).logits.clone()
        via_snapshot = PeftModel.from_pretrained(base, snapshot)(ids).logits
        via_hub_id = AutoPeftModelForCausalLM.from_pretrained("test-user/loadable")(ids).logits
    assert not torch.allclose(before, via_snapshot)
    torch.testing.assert_close(via_snapshot, via_hub_id)


def test_missing_files_are_refused_before_any_network_call(hub: HubServer, tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    (run / "adapter_model.safetensors").unlink()
    before = len(hub.requests)
    with pytest.raises(UserError, match="missing adapter_model.safetensors"):
        push_run(run, "test-user/incomplete")
    assert len(hub.requests) == before


@pytest.mark.hub
def test_401_never_shows_the_token(hub: HubServer, tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    secret = "hf_this_is_a_secret_token_123"
    env = {**os.environ, **hub.env(token=secret)}
    result = subprocess.run([sys.executable, "-m", "ft_plugin", "push", str(run), "--repo-id", "test-user/denied"],
                            capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not authorised" in lines[0]
    assert secret not in result.stdout + result.stderr
    for path in run.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path


def test_private_repo_is_invisible_without_a_token(hub: HubServer, tmp_path: Path) -> None:
    run = trained_run(tmp_path)
    push_run(run, "test-user/secret-model")
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info("test-user/secret-model", token=False)


def test_hf_recipes_and_templates_resolve_through_the_hub(hub: HubServer, tmp_path: Path) -> None:
    parent = tmp_path / "base.yaml"
    parent.write_text("extends: medical-lora\nlora_r: 4\n")
    child = tmp_path / "child.yaml"
    child.write_text("extends: base.yaml\nlearning_rate: 1.0e-3\n")
    template = tmp_path / "mytemplate.yaml"
    template.write_text(
        "name: mytemplate\ndomain: test\ndescription: Q and A.\nfields: {q: [q], a: [a]}\nrequired: [q, a]\n"
        "user: 'Q: {q}'\nassistant: '{a}'\n"
    )
    env = {**os.environ, **hub.env()}
    for kind, files in (("recipes", [parent, child]), ("templates", [template])):
        result = subprocess.run([sys.executable, "-m", "ft_plugin", kind, "push", *map(str, files), "--repo-id", f"test-user/{kind}"],
                                capture_output=True, text=True, env=env, timeout=300)  # fmt: skip
        assert result.returncode == 0, result.stderr
    readme = Path(HfApi().hf_hub_download("test-user/recipes", "README.md")).read_text()
    assert "`child.yaml`" in readme and "hf://test-user/recipes/" in readme
    loaded = load_recipe("hf://test-user/recipes/child.yaml")
    assert (
        loaded.recipe.lora_r == 4 and loaded.recipe.learning_rate == 1e-3 and loaded.name == "child"
    )
    from ft_plugin.config.schema import DatasetSection
    from ft_plugin.data.formats import convert_rows

    spec = DatasetSection(path="x", type="hf://test-user/templates/mytemplate.yaml")
    example = convert_rows([{"q": "Why?", "a": "Because."}], spec).examples[0]
    assert example["prompt"][-1]["content"] == "Q: Why?"


def test_a_recipe_on_a_pull_request_revision_resolves(hub: HubServer, tmp_path: Path) -> None:
    """`hf://OWNER/REPO@refs/pr/1/PATH`: a revision with slashes, and relative extends."""
    HfApi().create_repo("test-user/recipes")
    (tmp_path / "base.yaml").write_text("extends: medical-lora\nlora_r: 4\n")
    (tmp_path / "proposal.yaml").write_text("extends: base.yaml\nlearning_rate: 3.0e-4\n")
    opened = HfApi().upload_file(path_or_fileobj=str(tmp_path / "base.yaml"), path_in_repo="base.yaml",
                                 repo_id="test-user/recipes", create_pr=True)  # fmt: skip
    assert opened.pr_revision == "refs/pr/1"
    HfApi().upload_file(path_or_fileobj=str(tmp_path / "proposal.yaml"), path_in_repo="proposal.yaml",
                        repo_id="test-user/recipes", revision="refs/pr/1")  # fmt: skip
    loaded = load_recipe("hf://test-user/recipes@refs/pr/1/proposal.yaml")
    assert (loaded.recipe.lora_r, loaded.recipe.learning_rate) == (4, 3e-4)
    assert "proposal.yaml" not in hub.list_files("test-user/recipes")  # on the PR only
    encoded = load_recipe("hf://test-user/recipes@refs%2Fpr%2F1/proposal.yaml")
    assert encoded.recipe.learning_rate == 3e-4


@pytest.mark.hub
def test_hub_model_id_pushes_at_the_end_of_training(hub: HubServer, tmp_path: Path) -> None:
    publish_base(tmp_path)
    loaded = tiny_recipe(tmp_path, "lora", base_model=BASE, max_steps=2)
    env = {**os.environ, **hub.env()}
    result = subprocess.run(
        [sys.executable, "-m", "ft_plugin", "train", loaded.source, "--output-dir", str(tmp_path / "auto"),
         "--set", f"base_model={BASE}", "--set", "hub_model_id=test-user/auto-pushed"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "pushed to" in result.stdout
    assert "adapter_model.safetensors" in HfApi().list_repo_files("test-user/auto-pushed")


def test_merged_push_publishes_plain_weights(hub: HubServer, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    run = trained_run(tmp_path)
    push_run(run, "test-user/merged", merged=True, private=False)
    files = set(HfApi().list_repo_files("test-user/merged"))
    assert "model.safetensors" in files and "adapter_config.json" not in files
    record = json.loads(
        Path(HfApi().hf_hub_download("test-user/merged", "ft_plugin_merge.json")).read_text()
    )
    assert record["merged_from"] == run.name  # the run's name, not where it lies on this machine
    assert ModelCard.load("test-user/merged").data.library_name == "transformers"
    assert AutoModelForCausalLM.from_pretrained("test-user/merged").config.num_hidden_layers == 2


def test_space_push_creates_a_gradio_space_with_a_valid_card(
    hub: HubServer, tmp_path: Path
) -> None:
    from huggingface_hub import SpaceCard

    from ft_plugin.hub.space_folder import push_space

    url = push_space("test-user/demo-space", "test-user/tiny-lora", private=False, train=True)
    assert "test-user/demo-space" in url
    api = HfApi()
    assert api.repo_info("test-user/demo-space", repo_type="space").private is False
    files = set(api.list_repo_files("test-user/demo-space", repo_type="space"))
    assert files >= {"app.py", "requirements.txt", "config.yaml", "README.md"}
    card = SpaceCard.load("test-user/demo-space", repo_type="space")
    assert card.data.sdk == "gradio" and card.data.app_file == "app.py"
    assert card.data.models == ["test-user/tiny-lora"]
    assert card.data.hf_oauth is True  # Train on: its owner signs in with Hugging Face
    card.validate(repo_type="space")
    requirements = Path(
        api.hf_hub_download("test-user/demo-space", "requirements.txt", repo_type="space")
    ).read_text()
    assert "ft-plugin==" in requirements and "gradio[oauth]==" in requirements


def test_space_loads_an_adapter_by_hub_repo_id(hub: HubServer, tmp_path: Path) -> None:
    from ft_plugin.space.launch import load_app_module

    run = trained_run(tmp_path)
    push_run(run, "test-user/space-adapter", private=False)
    app = load_app_module()
    state = app.SpaceState.load("test-user/space-adapter", data_dir=tmp_path / "data")
    assert state.adapter_labels == ["test-user/space-adapter"]
    local = app.SpaceState.load(str(run), data_dir=tmp_path / "local")
    # the adapter that came down from the Hub is the one trained here, weight for weight
    from safetensors.torch import load_file

    trained = load_file(run / "adapter_model.safetensors")
    served = {name: p for name, p in state.loaded.model.named_parameters() if "lora_" in name}
    assert len(served) == len(trained)
    for name, tensor in trained.items():
        match = [
            p
            for n, p in served.items()
            if n.replace(".default", "").endswith(name.removeprefix("base_model."))
        ]
        assert len(match) == 1 and torch.equal(match[0].detach().float(), tensor.float()), name
    prompt = "What is 2 plus 2?"
    remote, here = (s.comparing.compare(prompt, max_new_tokens=8) for s in (state, local))
    assert (remote.base.text, remote.tuned.text) == (here.base.text, here.tuned.text)
    assert remote.tuned.new_tokens > 0
