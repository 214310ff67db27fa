"""Remote recipes run no code: what an `hf://` recipe may set, --trust-recipe, YAML aliases,
`values=`, the trust_remote_code notice, and what an hf:// folder brings down.

Remote files are served by the in-memory Hub (tests/hub_server.py) to the real client.
"""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import pytest
from helpers import cli
from hub_server import HubServer, hub_fixture

from ft_plugin.config import load_recipe, parse_set_options, remote_code_notice
from ft_plugin.errors import RecipeError, UserError

hub = hub_fixture()
REPO = "test-user/recipes"
DATA = "datasets:\n  - path: builtin:medical\n    type: medical\n"


def publish(server: HubServer, files: dict[str, str], repo: str = REPO) -> str:
    """Commit ``files`` to ``repo`` on the fake Hub; the commit id of main."""
    if server.get_repo(repo) is None:
        server.add_repo(repo, files=files)
    else:
        from huggingface_hub import CommitOperationAdd, HfApi

        ops = [CommitOperationAdd(path, text.encode()) for path, text in files.items()]
        HfApi().create_commit(repo, ops, commit_message="change")
    return server.get_repo(repo).refs["refs/heads/main"]


def local(tmp_path: Path, text: str, name: str = "recipe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def refusal(reference: str | Path, set_options: list[str] | None = None, **kwargs: object) -> str:
    """The one-line error of loading ``reference`` with ``--set`` options, as the CLI does."""
    with pytest.raises(RecipeError) as info:
        load_recipe(str(reference), parse_set_options(set_options or []), **kwargs)
    message = str(info.value)
    assert "\n" not in message
    return message


# (what a remote parent writes after a first line, the key refused, its line, words of the
# reason). Each snippet is a valid recipe part, so that the same lines in a local file load.
REFUSED = [
    ("trust_remote_code: true\n", "trust_remote_code", 2, "runs a model repo's Python code"),
    ("base_model: ./models/mine\n", "base_model", 2, "loads a model folder from this machine"),
    ("tokenizer_config: ~/tokenizers/t\n", "tokenizer_config", 2, "loads a tokenizer folder"),
    ("output_dir: /tmp/elsewhere/{recipe}\n", "output_dir", 2, "chooses where on this machine"),
    ("name: ../../.config/autostart\n", "name", 2, "names the run folder"),
    ("datasets:\n  - path: notes/patients.jsonl\n", "datasets.0.path", 3, "reads data from this machine"),
    ("datasets:\n  - path: https://evil.example/rows.jsonl\n", "datasets.0.path", 3,
     "fetches data from an address outside the Hub"),
    ("datasets:\n  - path: json\n    data_files: /home/me/.env\n", "datasets.0.data_files", 4,
     "reads files on this machine"),
    ("datasets:\n  - path: team/data\n    data_files: [train.json, 'simplecache::https://x/y']\n",
     "datasets.0.data_files", 4, "fetches files from an address outside the Hub"),
    ("datasets:\n  - path: builtin:medical\n    type: /srv/templates/t.yaml\n",
     "datasets.0.type", 4, "reads a template file"),
    ("test_datasets:\n  - path: /data/held-out.jsonl\n", "test_datasets.0.path", 3, "reads data"),
    ("replay:\n  datasets:\n    - path: ./old.jsonl\n", "replay.datasets.0.path", 4, "reads data"),
    ("stages:\n  - name: a\n    datasets:\n      - path: /data/a.jsonl\n",
     "stages.0.datasets.0.path", 5, "reads data"),
    ("lora_model_dir: runs/previous\n", "lora_model_dir", 2, "loads a folder from this machine"),
    ("ewc:\n  lambda: 1.0\n  previous: /runs/old\nlora_model_dir: hf://team/run\n",
     "ewc.previous", 4, "loads a folder from this machine"),
    ("hub_model_id: attacker/exfiltrated\n", "hub_model_id", 2, "publishes the run with your Hub"),
    ("hub:\n  create_pr: true\n", "hub.create_pr", 3, "chooses how the run is published"),
    ("hub:\n  revision: other\n", "hub.revision", 3, "chooses the branch"),
    ("hub:\n  private: false\n", "hub.private", 3, "chooses who can see"),
]  # fmt: skip


@pytest.mark.parametrize(("snippet", "key", "line", "reason"), REFUSED, ids=[r[1] for r in REFUSED])
def test_a_remote_parent_may_not_set_what_runs_code_reaches_files_or_publishes(
    hub: HubServer, tmp_path: Path, snippet: str, key: str, line: int, reason: str
) -> None:
    commit = publish(hub, {"base.yaml": f"description: shared\n{snippet}"})
    child = local(tmp_path, f"extends: hf://{REPO}/base.yaml\n")
    message = refusal(child)
    assert message.startswith(f"hf://{REPO}/base.yaml:{line}: {key}: {reason}"), message
    assert message.endswith(
        "a recipe from the Hub may not set it: set it in your local recipe, or pass "
        f"--trust-recipe hf://{REPO}@{commit}/base.yaml"
    )
    # the same lines in the local file are the user's own choice
    own = local(tmp_path, f"extends: hf://{REPO}/base.yaml\n{snippet}", "own.yaml")
    publish(hub, {"base.yaml": f"description: shared\n{DATA}"})
    assert load_recipe(str(own)).recipe.description == "shared"


def test_the_local_file_overrides_a_remote_value_and_so_owns_it(
    hub: HubServer, tmp_path: Path
) -> None:
    publish(hub, {"base.yaml": f"{DATA}hub_model_id: attacker/x\nhub:\n  create_pr: true\n"})
    child = local(
        tmp_path,
        f"extends: hf://{REPO}/base.yaml\nhub_model_id: me/mine\nhub:\n  private: true\n",
    )
    # hub.private is the child's; hub.create_pr, merged in beside it, is still the parent's
    assert refusal(child).startswith(f"hf://{REPO}/base.yaml:6: hub.create_pr: ")
    loaded = load_recipe(str(child), {"hub.create_pr": False})
    assert loaded.recipe.hub_model_id == "me/mine" and loaded.recipe.hub.create_pr is False


def test_harmless_keys_and_hub_references_pass_from_a_remote_parent(
    hub: HubServer, tmp_path: Path
) -> None:
    publish(
        hub,
        {
            "base.yaml": "extends: medical-lora\nlora_r: 4\nbase_model: team/model\n"
            "trust_remote_code: false\nlora_model_dir: hf://team/previous-run\n"
            "datasets:\n  - path: team/data\n    data_files: [train/*.jsonl]\n"
            "    type: hf://team/templates/t.yaml\n"
        },
    )
    loaded = load_recipe(str(local(tmp_path, f"extends: hf://{REPO}/base.yaml\n")))
    assert loaded.recipe.lora_r == 4 and loaded.recipe.base_model == "team/model"
    assert loaded.located.origins[("lora_r",)].remote is True
    assert loaded.located.origins[("lora_target_linear",)].remote is False  # the builtin's


def test_grandparents_and_siblings_of_a_remote_file_are_remote(
    hub: HubServer, tmp_path: Path
) -> None:
    publish(
        hub,
        {
            "team/base.yaml": f"extends: ../shared/code.yaml\n{DATA}",
            "shared/code.yaml": "lora_r: 4\ntrust_remote_code: yes\n",
        },
    )
    child = local(tmp_path, f"extends: hf://{REPO}/team/base.yaml\n")
    assert refusal(child).startswith(f"hf://{REPO}/shared/code.yaml:2: trust_remote_code: ")
    assert refusal(f"hf://{REPO}/team/base.yaml").startswith(f"hf://{REPO}/shared/code.yaml:2:")


def test_trust_recipe_pinned_to_the_commit_read_accepts_that_file_only(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = publish(hub, {"base.yaml": f"{DATA}trust_remote_code: true\nbase_model: team/m\n"})
    child = local(tmp_path, f"extends: hf://{REPO}/base.yaml\n")
    trusted = f"hf://{REPO}@{commit}/base.yaml"
    loaded = load_recipe(str(child), trust=[trusted])
    assert loaded.recipe.trust_remote_code is True
    assert remote_code_notice(loaded.recipe, loaded.located).startswith(
        f"trust_remote_code: true (hf://{REPO}/base.yaml line 4) runs the Python code of team/m "
    )
    assert not any("trusts nothing" in line for line in loaded.warnings)
    # the parent moves on: the trust was for the commit read, not for the name
    publish(hub, {"base.yaml": f"{DATA}trust_remote_code: true\nbase_model: evil/m\n"})
    assert "trust_remote_code: " in refusal(child, trust=[trusted])
    with pytest.raises(
        UserError, match=r"pin it to a full commit id, hf://test-user/recipes@COMMIT/"
    ):
        load_recipe(str(child), trust=[f"hf://{REPO}/base.yaml"])
    with pytest.raises(UserError, match="a local recipe needs no trust"):
        load_recipe(str(child), trust=[str(child)])


def test_trust_recipe_does_not_extend_to_the_trusted_files_parents(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = publish(
        hub, {"a.yaml": f"extends: b.yaml\n{DATA}", "b.yaml": "hub_model_id: attacker/x\n"}
    )
    child = local(tmp_path, f"extends: hf://{REPO}@{commit}/a.yaml\n")
    message = refusal(child, trust=[f"hf://{REPO}@{commit}/a.yaml"])
    assert message.startswith(f"hf://{REPO}@{commit}/b.yaml:1: hub_model_id: ")
    both = [f"hf://{REPO}@{commit}/{name}" for name in ("a.yaml", "b.yaml")]
    assert load_recipe(str(child), trust=both).recipe.hub_model_id == "attacker/x"


def test_an_unpinned_remote_parent_is_a_warning_and_a_pinned_one_is_not(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = publish(hub, {"base.yaml": f"{DATA}lora_r: 4\n"})
    child = local(tmp_path, f"# mine\nextends: hf://{REPO}/base.yaml\n")
    assert load_recipe(str(child)).warnings == [
        f"warning: {child}:2: extends: hf://{REPO}/base.yaml is not pinned to a commit: a "
        f"change to it changes this run; pin it: hf://{REPO}@{commit}/base.yaml"
    ]
    pinned = local(tmp_path, f"extends: hf://{REPO}@{commit}/base.yaml\n", "pinned.yaml")
    assert load_recipe(str(pinned)).warnings == []
    assert (
        load_recipe(f"hf://{REPO}/base.yaml")
        .warnings[0]
        .startswith(f"warning: hf://{REPO}/base.yaml is not pinned to a commit")
    )
    unused = load_recipe(str(pinned), trust=[f"hf://{REPO}@{'0' * 40}/base.yaml"]).warnings
    assert unused == [
        f"warning: --trust-recipe hf://{REPO}@{'0' * 40}/base.yaml: this recipe reads no such "
        "file at that commit, so it trusts nothing"
    ]


def test_cli_train_and_validate_take_trust_recipe_and_print_the_warning(
    hub: HubServer, tmp_path: Path
) -> None:
    commit = publish(hub, {"base.yaml": f"{DATA}hub_model_id: team/shared\n"})
    child = local(tmp_path, f"extends: hf://{REPO}/base.yaml\n")
    env = hub.env()
    refused = cli("recipes", "validate", str(child), env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().startswith(f"error: hf://{REPO}/base.yaml:4: hub_model_id: ")
    trusted = f"hf://{REPO}@{commit}/base.yaml"
    ok = cli("recipes", "validate", str(child), "--trust-recipe", trusted, env=env)
    assert ok.returncode == 0, ok.stderr
    assert ok.stderr.startswith(f"warning: {child}:1: extends: hf://{REPO}/base.yaml is not pinned")
    unpinned = cli("train", str(child), "--trust-recipe", f"hf://{REPO}/base.yaml", env=env)
    assert unpinned.returncode == 2
    assert unpinned.stderr.strip().startswith(
        f"error: --trust-recipe hf://{REPO}/base.yaml: pin it to a full commit id"
    )


# -- YAML anchors and aliases -----------------------------------------------------------------


def billion_laughs(levels: int = 30) -> str:
    lines = ['l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"l{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_billion_laughs_is_refused_before_anything_is_built(tmp_path: Path) -> None:
    path = local(tmp_path, f"description: hi\n{billion_laughs()}")
    load_recipe("medical-lora")  # imports and registry scans are not the document's cost
    tracemalloc.start()
    started = time.perf_counter()
    try:
        message = refusal(path)
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert message == f"{path}:2: YAML anchors and aliases are not allowed in recipes"
    assert seconds < 1.0 and peak < 2_000_000  # 9**30 strings were never made


def test_aliases_are_refused_in_a_remote_parent_and_in_set_values(
    hub: HubServer, tmp_path: Path
) -> None:
    publish(hub, {"base.yaml": f"{DATA}lora_target_modules: &m [q_proj]\nfreeze: *m\n"})
    child = local(tmp_path, f"extends: hf://{REPO}/base.yaml\n")
    assert refusal(child) == (
        f"hf://{REPO}/base.yaml:4: YAML anchors and aliases are not allowed in recipes"
    )
    assert refusal("medical-lora", set_options=["lora_target_modules=[&a q_proj, *a]"]) == (
        "--set: lora_target_modules: YAML anchors and aliases are not allowed in recipes"
    )
    laughs = billion_laughs().replace("\n", ", ").rstrip(", ")
    started = time.perf_counter()
    assert "not allowed" in refusal("medical-lora", set_options=[f"description={{{laughs}}}"])
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "item",
    ["a: &x [1, 2]=3", "lora r=4", "datasets[0].path=x", "hub..private=false", "../x=1"],
)
def test_set_keys_must_be_plain_key_paths(item: str) -> None:
    message = refusal("medical-lora", set_options=[item])
    assert message.startswith("--set: ") and "not a recipe key" in message


# -- typed overrides ---------------------------------------------------------------------------


def test_overrides_are_set_as_they_are_never_parsed_as_yaml() -> None:
    overrides = {**parse_set_options(["lora_r=4", "lora_target_modules=[q_proj]"]),
                 "lora_r": 6, "domain": "[a, b]", "datasets.0.max_rows": 5, "hub.license": "mit"}  # fmt: skip
    loaded = load_recipe("medical-lora", overrides)
    recipe = loaded.recipe
    assert recipe.lora_r == 6 and recipe.domain == "[a, b]"  # the last value wins; never parsed
    assert recipe.lora_target_modules == ["q_proj"]  # --set values are YAML
    assert recipe.datasets[0].max_rows == 5 and recipe.hub.license == "mit"
    assert loaded.located.origins[("domain",)].file == "--set"
    with pytest.raises(RecipeError, match=r"^space request: lora_rr: unknown key"):
        load_recipe("medical-lora", {"lora_rr": 3}, overrides_origin="space request")
    with pytest.raises(RecipeError, match=r"^space request: 'lora_r=1': not a recipe key"):
        load_recipe("medical-lora", {"lora_r=1": 3}, overrides_origin="space request")
    anchor = "&a [1]"  # a value is text, not YAML: it stays the string it is
    assert load_recipe("medical-lora", {"description": anchor}).recipe.description == anchor


# -- the trust_remote_code notice ------------------------------------------------------------


def test_train_says_whose_code_trust_remote_code_runs_before_any_model_loads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import ft_plugin.train
    from ft_plugin.cli import main

    seen: list[str] = []

    def no_training(loaded: object, *args: object) -> None:
        seen.append(capsys.readouterr().err)
        raise UserError("stopped before training")

    monkeypatch.setattr(ft_plugin.train, "train", no_training)
    recipe = local(tmp_path, f"{DATA}base_model: team/coder\n\ntrust_remote_code: true\n")
    assert main(["train", str(recipe)]) == 2
    assert seen == [
        f"ft-plugin: trust_remote_code: true ({recipe} line 6) runs the Python code of "
        "team/coder (revision main, not a pinned commit) on this machine\n"
    ]
    commit = "a" * 40
    assert main(["train", str(recipe), "--set", f"base_model_revision={commit}"]) == 2
    assert f"team/coder (commit {commit}) on this machine" in seen[-1]
    plain = local(tmp_path, DATA, "plain.yaml")
    assert main(["train", str(plain)]) == 2
    assert "trust_remote_code" not in seen[-1]


# -- hf:// folders: data, never code --------------------------------------------------------------


def test_an_hf_folder_brings_safetensors_and_json_but_no_code_or_pickles(
    hub: HubServer, tmp_path: Path
) -> None:
    from ft_plugin.hub.refs import resolve_folder

    files = {
        "adapter_model.safetensors": b"\0" * 64,
        "adapter_config.json": '{"peft_type": "LORA"}',
        "tokenizer.json": "{}",
        "recipe.yaml": DATA,
        "evil.py": "open('/tmp/pwned', 'w')",
        "pytorch_model.bin": b"pickle",
        "training_args.pt": b"pickle",
        "stages/a/adapter_model.safetensors": b"\0" * 64,
        "stages/a/loader.py": "import os",
        "stages/a/optimizer.pkl": b"pickle",
    }
    hub.add_repo("test-user/previous-run", files=files)
    folder = resolve_folder("hf://test-user/previous-run")
    got = {str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file()}
    assert got == {
        "adapter_model.safetensors", "adapter_config.json", "tokenizer.json", "recipe.yaml",
        "stages/a/adapter_model.safetensors",
    }  # fmt: skip
    stage = resolve_folder("hf://test-user/previous-run/stages/a")
    assert stage.name == "a" and (stage / "adapter_model.safetensors").is_file()


def test_ewc_on_a_hub_run_does_not_run_its_recipes_code(hub: HubServer, tmp_path: Path) -> None:
    from ft_plugin.continual.fisher import ensure_fisher
    from ft_plugin.hub.refs import resolve_folder

    run = f"{DATA}base_model: team/coder\ntrust_remote_code: true\n"
    hub.add_repo("test-user/their-run", files={"recipe.yaml": run, "adapter_config.json": "{}"})
    folder = resolve_folder("hf://test-user/their-run")
    with pytest.raises(UserError, match=r"recipe.yaml:5: trust_remote_code: runs a model repo"):
        ensure_fisher(folder, samples=1)
