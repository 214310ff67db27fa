"""Publishing goes only where the owner means, and the pushed files carry nothing local.

Against the in-memory Hub (tests/hub_server.py) with the real `huggingface_hub` client: an
existing repo needs `overwrite`, visibility only ever moves towards private, `namespaces`
bounds the owner, and a refusal creates and uploads nothing. The pushed card, recipe and
eval report name files by their name (no run folder, no tmp dir, no URL token), and the
evaluated rows stay home unless `include_predictions`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import tiny_recipe
from hub_server import HubServer, hub_fixture
from huggingface_hub import HfApi, ModelCard, snapshot_download

from ft_plugin.config import load_recipe
from ft_plugin.errors import UserError
from ft_plugin.hub.public import public_path, public_recipe, public_report
from ft_plugin.hub.publish import push_run

hub = hub_fixture()
BASE = "test-user/tiny-base"  # a Hub id: the pushed adapter names its base by it
SECRET = "SECRET-q8Zt3v"  # in a data_files URL's query string
URL = f"https://data.example.org/exports/2024/rows.jsonl?token={SECRET}"
WRITES = ("POST", "PUT", "DELETE")


def push_command(run: Path, repo_id: str) -> list[str]:
    """``ft-plugin push RUN --repo-id REPO`` as a subprocess command."""
    return [sys.executable, "-m", "ft_plugin", "push", str(run), "--repo-id", repo_id]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny run, evaluated with answers (predictions.jsonl) and a human rating sheet
    in eval/ (both hold the evaluated prompts)."""
    from ft_plugin.evaluate.human import write_human_sheet
    from ft_plugin.evaluate.report import write_eval_report
    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation
    from ft_plugin.train import train

    tmp = tmp_path_factory.mktemp("trained")
    loaded = tiny_recipe(tmp, "lora", extra="val_set_size: 4\ndomain: medical\n")
    run = train(loaded, str(tmp / "run")).run_dir
    settings = EvalSettings(baseline=True, metrics=["perplexity", "rougeL"], max_new_tokens=8)
    report, results, _, _ = run_evaluation(str(run), settings)
    write_eval_report(report.to_dict(), run / "eval", results=results, labels=None,
                      trainer_state=run / "trainer_state.json", predictions=report.predictions)  # fmt: skip
    items = [{"prompt": r["prompt"], "base_answer": r["base_answer"],
              "tuned_answer": r["tuned_answer"]} for r in report.predictions]  # fmt: skip
    write_human_sheet(items, run / "eval" / "ratings.csv")
    return run


def local_run(trained: Path, tmp_path: Path, **recipe_changes: object) -> Path:
    """A copy of the trained run whose recipe names its data by absolute paths, a URL with
    a token, and a Hub base (what a user's run looks like)."""
    run = shutil.copytree(trained, tmp_path / "home" / "ana" / "patient-run")
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    data = recipe["datasets"][0]["path"]
    recipe["base_model"] = BASE
    recipe["datasets"].append({"path": "json", "type": "alpaca", "data_files": URL})
    recipe["test_datasets"] = [{"path": data, "type": "alpaca"}]
    recipe["output_dir"] = str(run)
    recipe["ewc"] = {"lambda": 1.0, "previous": str(tmp_path / "home" / "ana" / "earlier-run")}
    recipe["replay"] = {"datasets": [{"path": str(tmp_path / "general.jsonl")}], "ratio": 0.1}
    recipe.update(recipe_changes)
    (run / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    return run


def prompts(run: Path) -> list[str]:
    lines = (run / "eval" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["prompt"] for line in lines if line]


def writes(hub: HubServer) -> int:
    return sum(1 for method, _, _ in hub.requests if method in WRITES)


# --------------------------------------------------------------------------- what is pushed


def test_pushed_files_hold_no_local_path_no_url_token_and_no_row(
    hub: HubServer, trained: Path, tmp_path: Path
) -> None:
    run = local_run(trained, tmp_path)
    report = json.loads((run / "eval" / "report.json").read_text())
    assert str(trained) in report["data"]["source"]  # the leak this test guards against
    push_run(run, "test-user/patient-lora")

    files = set(HfApi().list_repo_files("test-user/patient-lora"))
    assert {"recipe.yaml", "README.md", "eval/report.json", "eval/report.md"} <= files
    assert "eval/training_curves.png" in files
    assert not {"eval/predictions.jsonl", "eval/ratings.csv", "eval/ratings.key.csv"} & files
    snapshot = Path(snapshot_download("test-user/patient-lora", local_dir=tmp_path / "pulled"))
    forbidden = [str(trained), str(trained.parent), str(run), str(tmp_path), SECRET]
    forbidden += prompts(run)
    assert len(forbidden) > 6
    for path in snapshot.rglob("*"):
        if path.is_file() and ".cache" not in path.parts:
            data = path.read_bytes()
            for text in forbidden:
                assert text.encode() not in data, (path.name, text)

    pushed = load_recipe(str(snapshot / "recipe.yaml")).recipe  # still a valid recipe
    assert pushed.datasets[0].path == "rows.jsonl"
    assert pushed.datasets[1].data_files == "https://data.example.org/.../rows.jsonl"
    assert pushed.test_datasets[0].path == "rows.jsonl" and pushed.output_dir == "patient-run"
    assert (
        pushed.ewc.previous == "earlier-run" and pushed.replay.datasets[0].path == "general.jsonl"
    )
    assert pushed.base_model == BASE
    card = ModelCard.load(snapshot / "README.md")
    index = card.data.to_dict()["model-index"][0]["results"][0]["dataset"]
    assert index["name"] == "held-out split of rows.jsonl, json"
    assert "`rows.jsonl` (not published)" in card.text
    shown = json.loads((snapshot / "eval" / "report.json").read_text())
    assert shown["settings"]["target"] == "run" and shown["data"]["source"] == index["name"]
    assert "Answers side by side" not in (snapshot / "eval" / "report.md").read_text()


def test_include_predictions_publishes_the_answers(
    hub: HubServer, trained: Path, tmp_path: Path
) -> None:
    run = local_run(trained, tmp_path)
    env = {**os.environ, **hub.env()}
    command = push_command(run, "test-user/with-rows")
    result = subprocess.run([*command, "--include-predictions"], capture_output=True, text=True,
                            env=env, timeout=300)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    api = HfApi()
    pulled = Path(api.hf_hub_download("test-user/with-rows", "eval/predictions.jsonl"))
    assert pulled.read_bytes() == (run / "eval" / "predictions.jsonl").read_bytes()
    report_md = Path(api.hf_hub_download("test-user/with-rows", "eval/report.md")).read_text()
    assert "Answers side by side" in report_md
    assert "eval/ratings.csv" not in api.list_repo_files("test-user/with-rows")  # never
    assert str(tmp_path) not in report_md and SECRET not in report_md


def test_a_local_trace_left_in_a_file_refuses_the_push(
    hub: HubServer, trained: Path, tmp_path: Path
) -> None:
    """The last check: a file copied as it is (here the tokenizer's config) that names the
    run folder stops the push before anything is created."""
    run = local_run(trained, tmp_path)
    config = json.loads((run / "tokenizer_config.json").read_text())
    config["name_or_path"] = str(run / "tokenizer")
    (run / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(
        UserError, match=r"^tokenizer_config.json: would publish a local path"
    ) as exc:
        push_run(run, "test-user/traced")
    assert str(tmp_path) not in str(exc.value)
    assert hub.get_repo("test-user/traced") is None and writes(hub) == 0


# --------------------------------------------------------------------------- where it goes


def test_an_existing_repo_needs_overwrite(hub: HubServer, trained: Path, tmp_path: Path) -> None:
    run = local_run(trained, tmp_path)
    repo = hub.add_repo("test-user/taken", private=True, files={"README.md": "someone's model\n"})
    head, before = repo.refs["refs/heads/main"], writes(hub)
    with pytest.raises(UserError) as exc:
        push_run(run, "test-user/taken")
    assert str(exc.value) == (
        "test-user/taken already exists on the Hub; pass --overwrite to push this run into it"
    )
    assert repo.refs["refs/heads/main"] == head and writes(hub) == before
    assert hub.token not in str(exc.value)
    pushed = push_run(run, "test-user/taken", overwrite=True)
    assert pushed.changed and not pushed.made_private
    assert "adapter_model.safetensors" in hub.list_files("test-user/taken")


def test_overwrite_into_a_public_repo_makes_it_private_first(
    hub: HubServer, trained: Path, tmp_path: Path
) -> None:
    run = local_run(trained, tmp_path)  # hub.private: true (the default) in its recipe
    repo = hub.add_repo("test-user/was-public", private=False)
    result = push_run(run, "test-user/was-public", overwrite=True)
    assert result.made_private and repo.private
    settings = [
        i for i, (m, p, _) in enumerate(hub.requests) if m == "PUT" and p.endswith("/settings")
    ]
    commits = [i for i, (m, p, _) in enumerate(hub.requests) if m == "POST" and "/commit/" in p]
    assert len(settings) == 1 and settings[0] < commits[0]  # private before any file lands
    again = push_run(run, "test-user/was-public", overwrite=True)
    assert not again.changed and not again.made_private
    assert HfApi().model_info("test-user/was-public").private is True


@pytest.mark.parametrize("how", ["flag", "recipe"])
def test_a_push_that_needs_a_private_repo_public_is_refused(
    hub: HubServer, trained: Path, tmp_path: Path, how: str
) -> None:
    changes = {"hub": {"private": False}} if how == "recipe" else {}
    run = local_run(trained, tmp_path, **changes)
    repo = hub.add_repo("test-user/kept-private", private=True)
    head, before = repo.refs["refs/heads/main"], writes(hub)
    with pytest.raises(
        UserError, match="is private on the Hub and this push asks for a public repo"
    ):
        push_run(
            run, "test-user/kept-private", overwrite=True, private=False if how == "flag" else None
        )
    assert repo.private and repo.refs["refs/heads/main"] == head and writes(hub) == before


def test_namespaces_bound_the_owner_and_nothing_is_created(
    hub: HubServer, trained: Path, tmp_path: Path
) -> None:
    run = local_run(trained, tmp_path)
    for repo_id in ("mallory/exfiltrated", "no-owner"):
        with pytest.raises(UserError) as exc:
            push_run(run, repo_id, namespaces=["test-user", "test-lab"])
        assert str(exc.value) == (
            f"repo id {repo_id}: this Space publishes only under test-user (or test-lab)"
        )
    assert not hub.requests and not hub.repos  # refused before any call to the Hub
    result = push_run(run, "test-lab/shared", namespaces=["test-user", "test-lab"])
    assert result.changed and hub.get_repo("test-lab/shared") is not None


def test_cli_refusals_are_one_line_without_the_token(
    hub: HubServer, trained: Path, tmp_path: Path
) -> None:
    secret = "hf_publish_secret_token_987"
    assert isinstance(hub.tokens, dict)
    hub.tokens[secret] = "test-user"
    run = local_run(trained, tmp_path)
    hub.add_repo("test-user/private-one", private=True)
    env = {**os.environ, **hub.env(token=secret)}
    base = push_command(run, "test-user/private-one")
    for extra, expected in (
        ([], "pass --overwrite"),
        (
            ["--overwrite", "--public"],
            "make it public in its Settings on the Hub, or pass --private",
        ),
    ):
        result = subprocess.run(
            [*base, *extra], capture_output=True, text=True, env=env, timeout=300
        )
        assert result.returncode == 2, result.stderr[-2000:]
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], lines
        assert secret not in result.stdout + result.stderr
    assert hub.list_files("test-user/private-one") == [".gitattributes"]


# --------------------------------------------------------------------------- the reductions


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("/home/ana/patients/2024.jsonl", "2024.jsonl"),
        ("./data/train.csv", "train.csv"),
        ("data/train.parquet", "train.parquet"),
        ("~/runs/medical/", "medical"),
        ("C:\\Users\\ana\\notes.tsv", "notes.tsv"),
        ("file:///srv/x/rows.jsonl", "file:///.../rows.jsonl"),
        ("https://u:pw@host.example:8443/a/b/c.jsonl?sig=x#f", "https://host.example/.../c.jsonl"),
        ("https://host.example/c.jsonl?token=x", "https://host.example/c.jsonl"),
        ("s3://bucket/private/key.parquet", "s3://bucket/.../key.parquet"),
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B"),
        ("hf://datasets/me/med@main/train.jsonl", "hf://datasets/me/med@main/train.jsonl"),
        ("builtin:medical", "builtin:medical"),
        ("embedded:smollm2-135m-instruct", "embedded:smollm2-135m-instruct"),
    ],
)
def test_public_path(value: str, shown: str) -> None:
    assert public_path(value) == shown


def test_public_recipe_reaches_stages_adapters_and_templates() -> None:
    recipe = {
        "base_model": "/models/llama", "tokenizer_config": "/models/tok", "lora_model_dir": "/r/prev",
        "datasets": [
            {"path": "me/med", "data_files": ["data/train-*.parquet", "/abs/x.parquet"]},
            {"path": "/srv/a.jsonl", "type": "/srv/templates/triage.yaml", "data_files": "sub/y.jsonl"},
        ],
        "stages": [{"name": "s1", "datasets": [{"path": "/srv/s1.jsonl"}],
                    "ewc": {"lambda": 1, "previous": "/srv/runs/base"}}],
        "adapters": [{"name": "t", "test_datasets": [{"path": "../up/t.csv"}]}],
        "chat_template": "{{ '/' }}", "note": "/srv/n.md",
    }  # fmt: skip
    shown = public_recipe(recipe)
    assert (shown["base_model"], shown["tokenizer_config"], shown["lora_model_dir"]) == (
        "llama",
        "tok",
        "prev",
    )
    assert shown["datasets"][0]["data_files"] == [
        "data/train-*.parquet",
        "x.parquet",
    ]  # in-repo path kept
    assert shown["datasets"][1] == {
        "path": "a.jsonl",
        "type": "triage.yaml",
        "data_files": "y.jsonl",
    }
    assert shown["stages"][0]["datasets"][0]["path"] == "s1.jsonl"
    assert shown["stages"][0]["ewc"]["previous"] == "base"
    assert shown["adapters"][0]["test_datasets"][0]["path"] == "t.csv"
    assert shown["chat_template"] == "{{ '/' }}" and shown["note"] == "n.md"


def test_public_report_names_the_eval_file() -> None:
    report = {"data": {"source": "/srv/ana/eval/visits.csv", "rows": 3},
              "settings": {"target": "/srv/ana/runs/x", "data": "/srv/ana/eval/visits.csv"}}  # fmt: skip
    shown = public_report(report)
    assert shown["data"] == {"source": "visits.csv", "rows": 3}
    assert shown["settings"] == {"target": "x", "data": "visits.csv"}
    assert report["data"]["source"] == "/srv/ana/eval/visits.csv"  # the run's own file unchanged
