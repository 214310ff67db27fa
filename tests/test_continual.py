"""Continual learning on a tiny model: stages, resume, Fisher, EWC penalty, replay."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path

import pytest
import torch
from helpers import tiny_recipe, write_rows
from safetensors.torch import load_file
from tiny import tiny_llama

from ft_plugin.continual.ewc import EwcPenalty, compute_fisher
from ft_plugin.errors import RecipeError
from ft_plugin.train import train

STAGES = """
stages:
  - name: general
    max_steps: 2
  - name: specialty
    max_steps: 3
    save_steps: 2
    learning_rate: 5.0e-3
    datasets:
      - path: {special}
        type: alpaca
"""


def special_rows(tmp_path: Path) -> Path:
    rows = [
        {"instruction": f"Dose of drug {i}?", "output": f"{i * 10} mg twice daily."}
        for i in range(12)
    ]
    return write_rows(tmp_path / "special.jsonl", rows)


@pytest.mark.slow
def test_stages_chain_adapters_and_report_per_stage_metrics(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra=STAGES.format(special=special_rows(tmp_path)))
    result = train(loaded, str(tmp_path / "run"))
    run = result.run_dir
    assert set(result.metrics["stages"]) == {"general", "specialty"}
    assert result.metrics["stages"]["general"]["steps"] == 2 and result.metrics["steps"] == 3
    second = run / "stages" / "specialty"
    import yaml

    assert yaml.safe_load((second / "recipe.yaml").read_text())["lora_model_dir"] == str(
        run / "stages" / "general"
    )
    # the final adapter at the top is the last stage's
    assert (
        load_file(run / "adapter_model.safetensors").keys()
        == load_file(second / "adapter_model.safetensors").keys()
    )
    top, last = (
        load_file(run / "adapter_model.safetensors"),
        load_file(second / "adapter_model.safetensors"),
    )
    assert all(torch.equal(top[k], last[k]) for k in top)
    first = load_file(run / "stages" / "general" / "adapter_model.safetensors")
    assert any(not torch.equal(first[k], last[k]) for k in first), (
        "stage 2 trained on top of stage 1"
    )
    assert json.loads((run / "metrics.json").read_text())["stages"]["specialty"]["steps"] == 3


@pytest.mark.slow
def test_stage_resume_skips_finished_stages(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra=STAGES.format(special=special_rows(tmp_path)))
    run = train(loaded, str(tmp_path / "run")).run_dir
    import shutil

    # as if killed during stage 2's last step: only checkpoint-2 made it to disk
    (run / "stages" / "specialty" / "metrics.json").unlink()
    shutil.rmtree(run / "stages" / "specialty" / "checkpoints" / "checkpoint-3")
    assert (run / "stages" / "specialty" / "checkpoints" / "checkpoint-2").is_dir()
    first_before = (run / "stages" / "general" / "adapter_model.safetensors").stat().st_mtime_ns
    result = train(loaded, str(tmp_path / "run"), resume=True)
    assert (
        run / "stages" / "general" / "adapter_model.safetensors"
    ).stat().st_mtime_ns == first_before
    assert result.metrics["stages"]["specialty"]["steps"] == 3


def test_a_stage_cannot_change_the_method(tmp_path: Path) -> None:
    bad = "stages:\n  - name: one\n    adapter: full\n"
    with pytest.raises(RecipeError, match=r"stages\.0\.adapter: cannot override adapter here"):
        tiny_recipe(tmp_path, "lora", extra=bad)


def per_sample_batches(n: int) -> list[dict[str, torch.Tensor]]:
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(n):
        ids = torch.randint(0, 250, (1, 12), generator=generator)
        labels = ids.clone()
        labels[0, :5] = -100
        batches.append({"input_ids": ids, "labels": labels})
    return batches


@pytest.mark.slow
def test_fisher_matches_a_brute_force_per_sample_computation() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        tiny_llama(), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    )
    batches = per_sample_batches(5)
    fisher = compute_fisher(model, batches)
    name = next(n for n, p in model.named_parameters() if p.requires_grad)
    param = dict(model.named_parameters())[name]
    expected = torch.zeros_like(param)
    for batch in batches:  # independent: torch.autograd.grad per sample
        loss = model(**batch).loss
        (grad,) = torch.autograd.grad(loss, param)
        expected += grad**2
    torch.testing.assert_close(fisher[name], expected / len(batches), rtol=1e-4, atol=1e-10)
    # batch-mean gradients squared are smaller: the reason for per-sample gradients
    model.zero_grad()
    mean_loss = sum(model(**b).loss for b in batches) / len(batches)
    (batch_grad,) = torch.autograd.grad(mean_loss, param)
    assert (batch_grad**2).sum() < fisher[name].sum()


class Terminal(io.StringIO):
    """stderr as a person's terminal (tqdm draws its bars only there)."""

    def isatty(self) -> bool:
        return True


def test_the_fisher_of_a_run_shows_its_progress(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ft_plugin.continual.fisher import write_fisher

    run = train(tiny_recipe(tmp_path, "lora", max_steps=1), str(tmp_path / "run")).run_dir
    monkeypatch.setattr(sys, "stderr", Terminal())
    path, count, _ = write_fisher(run, samples=4)
    shown = sys.stderr.getvalue()
    assert path.is_file() and count > 0
    assert f"ft-plugin: computing the Fisher of {run} on 4 rows (per-sample gradients)\n" in shown
    assert "Fisher information:   0%" in shown and "0/4 [" in shown


def test_ewc_penalty_is_zero_at_the_anchor_and_quadratic_around_it() -> None:
    from peft import LoraConfig, get_peft_model

    model = get_peft_model(
        tiny_llama(), LoraConfig(r=2, target_modules=["q_proj"], init_lora_weights=False)
    )
    params = {n: p for n, p in model.named_parameters() if p.requires_grad}
    fisher = {n: torch.rand_like(p) for n, p in params.items()}
    anchors = {n: p.detach().clone() for n, p in params.items()}
    penalty = EwcPenalty(model, fisher, anchors, lam=3.0)
    assert float(penalty()) == 0.0
    direction = {n: torch.randn_like(p) for n, p in params.items()}
    values = []
    for step in (0.1, 0.2):
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(anchors[n] + step * direction[n])
        values.append(float(penalty()))
    expected = 0.5 * 3.0 * sum(float((fisher[n] * (0.1 * direction[n]) ** 2).sum()) for n in params)
    assert values[0] == pytest.approx(expected, rel=1e-4)
    assert values[1] == pytest.approx(4 * values[0], rel=1e-4)


@pytest.mark.slow
def test_ewc_run_protects_the_previous_adapter(tmp_path: Path) -> None:
    first = train(tiny_recipe(tmp_path, "lora", max_steps=3), str(tmp_path / "a")).run_dir
    settings = {"max_steps": 4, "learning_rate": 0.05, "lora_model_dir": str(first)}
    special = special_rows(tmp_path)
    plain = train(
        tiny_recipe(tmp_path, "lora", **settings, **{"datasets.0.path": special}),
        str(tmp_path / "b"),
    ).run_dir
    assert (first / "fisher.safetensors").exists() is False
    ewc = "ewc:\n  lambda: 1000000.0\n  fisher_samples: 8\n"
    protected = train(tiny_recipe(tmp_path, "lora", extra=ewc, **settings, **{"datasets.0.path": special}),
                      str(tmp_path / "c")).run_dir  # fmt: skip
    assert (first / "fisher.safetensors").is_file()
    anchor = load_file(first / "adapter_model.safetensors")
    drift = {
        name: sum(
            float((load_file(d / "adapter_model.safetensors")[k] - anchor[k]).norm())
            for k in anchor
        )
        for name, d in (("plain", plain), ("ewc", protected))
    }
    assert drift["ewc"] < drift["plain"]
    logs = json.loads((protected / "trainer_state.json").read_text())["log_history"]
    assert any("ewc_penalty" in entry for entry in logs)


def test_replay_mixes_the_share_of_earlier_rows(tmp_path: Path) -> None:
    from ft_plugin.data import build_training_data

    earlier = write_rows(
        tmp_path / "earlier.jsonl", [{"instruction": f"old {i}", "output": "x"} for i in range(40)]
    )
    replay = f"replay:\n  ratio: 0.25\n  datasets:\n    - path: {earlier}\n"
    loaded = tiny_recipe(tmp_path, "lora", extra=replay)
    data = build_training_data(loaded.recipe)
    prompts = [row["prompt"][-1]["content"] for row in data.train]
    new_rows = 26
    assert len(prompts) == new_rows + round(0.25 * new_rows)
    assert sum(p.startswith("old ") for p in prompts) == round(0.25 * new_rows)


ADAPTERS = """
adapters:
  - name: arithmetic
    datasets:
      - path: {arith}
        type: alpaca
  - name: dosing
    datasets:
      - path: {special}
        type: alpaca
"""


@pytest.mark.slow
def test_task_adapters_round_trip_and_the_router_picks_the_right_one(tmp_path: Path) -> None:
    from ft_plugin.continual.adapters import adapter_names, load_task_adapters

    arith = write_rows(tmp_path / "arith.jsonl", [{"instruction": f"What is {a} plus {b}?", "output": str(a + b)}
                                                  for a in range(8) for b in range(3)])  # fmt: skip
    loaded = tiny_recipe(
        tmp_path,
        "lora",
        extra=ADAPTERS.format(arith=arith, special=special_rows(tmp_path)),
        max_steps=2,
    )
    result = train(loaded, str(tmp_path / "run"))
    run = result.run_dir
    assert adapter_names(run) == ["arithmetic", "dosing"]
    assert result.metrics["router"]["accuracy"] >= 0.9
    model, tokenizer, router = load_task_adapters(run)
    assert router.route("What is 12 plus 30?") == "arithmetic"
    assert router.route("Dose of drug 42?") == "dosing"
    ids = torch.tensor([[1, 2, 3, 4, 5]])
    outputs = {}
    for name in ("arithmetic", "dosing"):
        model.set_adapter(name)
        with torch.no_grad():
            outputs[name] = model(ids).logits
    assert not torch.allclose(outputs["arithmetic"], outputs["dosing"])
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    single = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-model"), str(run / "dosing")
    ).eval()
    with torch.no_grad():
        torch.testing.assert_close(single(ids).logits, outputs["dosing"])


@pytest.mark.slow
def test_forgetting_matrix_over_stages(tmp_path: Path) -> None:
    from ft_plugin.evaluate.runner import EvalSettings
    from ft_plugin.evaluate.sequence import forgetting_report

    special = special_rows(tmp_path)
    loaded = tiny_recipe(tmp_path, "lora", extra=STAGES.format(special=special))
    run = train(loaded, str(tmp_path / "run")).run_dir
    general = write_rows(tmp_path / "general_task.jsonl")
    report = forgetting_report(
        str(run), [str(general), str(special)], EvalSettings(max_samples=6), tmp_path / "f"
    )
    assert report["metric"] == "perplexity" and len(report["R"]) == 2 and len(report["R"][0]) == 2
    assert report["bwt"] == pytest.approx(
        report["R"][0][0] - report["R"][1][0]
    )  # lower is better: improvement > 0
    assert (tmp_path / "f" / "forgetting.png").is_file()
