"""Training on a tiny random Llama: every method, loss masking, packing, resume, early stopping."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import cli, full_pass_label_score, tiny_recipe
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from ft_plugin.engine import prepare_run
from ft_plugin.evaluate.scoring import score_labels
from ft_plugin.train import train

PEFT_METHODS = ["lora", "dora", "ia3", "llama-adapter", "bottleneck", "qlora"]
CONTRACT = {
    "train_loss", "eval_loss", "eval_perplexity", "train_tokens", "tokens_per_second",
    "peak_memory_mb", "wall_seconds", "trainable_params", "total_params", "steps",
}  # fmt: skip


def base_logits(model_dir: Path, ids: torch.Tensor) -> torch.Tensor:
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with torch.no_grad():
        return model(ids).logits


@pytest.mark.parametrize("adapter", PEFT_METHODS)
def test_peft_methods_train_and_save_a_loadable_adapter(tmp_path: Path, adapter: str) -> None:
    from peft import PeftModel

    import ft_plugin.methods.bottleneck  # noqa: F401  (registers the PEFT type for loading)

    loaded = tiny_recipe(tmp_path, adapter, extra="val_set_size: 4\n")
    result = train(loaded, str(tmp_path / "run"))
    run = result.run_dir
    for name in ("adapter_config.json", "adapter_model.safetensors", "recipe.yaml", "metrics.json",
                 "trainer_state.json", "tokenizer_config.json"):  # fmt: skip
        assert (run / name).is_file(), name
    assert not (run / "training_args.bin").exists()
    metrics = json.loads((run / "metrics.json").read_text())
    assert set(metrics) >= CONTRACT
    assert metrics["steps"] == 3 and 0 < metrics["trainable_params"] < metrics["total_params"]
    assert metrics["eval_perplexity"] == pytest.approx(
        2.718281828 ** metrics["eval_loss"], rel=1e-3
    )
    assert metrics["train_tokens"] > 0 and metrics["tokens_per_second"] > 0

    ids = torch.tensor([[1, 2, 3, 4, 5, 6, 7, 8]])
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-model", dtype=torch.float32)
    with torch.no_grad():
        before = base(ids).logits.clone()
    tuned = PeftModel.from_pretrained(base, run)
    with torch.no_grad():
        after = tuned(ids).logits
    assert not torch.allclose(before, after, atol=1e-6), "the adapter must change the output"

    # Label scoring shares the prompt's key/value cache: it must equal full passes
    # through every adapter type too (prompt-prefix adapters and bottlenecks included).
    tokenizer = AutoTokenizer.from_pretrained(run)
    examples = [
        {"prompt": [{"role": "user", "content": text}], "completion": []}
        for text in ("Is it up?", "A longer question about the quarterly results")
    ]
    scores = score_labels(tuned.eval(), tokenizer, examples, ["yes", "no"], batch_size=2)
    expected = [
        [full_pass_label_score(tuned, tokenizer, e["prompt"], label) for label in ("yes", "no")]
        for e in examples
    ]
    assert scores == [pytest.approx(row, abs=1e-3) for row in expected]


@pytest.mark.parametrize("adapter", ["full", "freeze"])
def test_full_and_freeze_write_full_weights(tmp_path: Path, adapter: str) -> None:
    loaded = tiny_recipe(tmp_path, adapter)
    run = train(loaded, str(tmp_path / "run")).run_dir
    weights = load_file(run / "model.safetensors")
    original = load_file(tmp_path / "tiny-model" / "model.safetensors")
    changed = {k for k in original if not torch.equal(original[k], weights[k])}
    if adapter == "full":
        assert "model.layers.0.self_attn.q_proj.weight" in changed
    else:  # top 1 of 2 layers trains, plus the head and final norm
        assert "model.layers.1.self_attn.q_proj.weight" in changed and "lm_head.weight" in changed
        assert not any(k.startswith("model.layers.0.") for k in changed)
        assert "model.embed_tokens.weight" not in changed
    reloaded = AutoModelForCausalLM.from_pretrained(run)
    assert reloaded.config.num_hidden_layers == 2


def test_trainable_share_is_logged_and_recorded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train(tiny_recipe(tmp_path, "lora"), str(tmp_path / "run"))
    err = capsys.readouterr().err
    m = result.metrics
    assert f"{m['trainable_params']:,} trainable of {m['total_params']:,}" in err


def test_only_the_answer_tokens_carry_loss(tmp_path: Path) -> None:
    prepared = prepare_run(tiny_recipe(tmp_path, "lora"), str(tmp_path / "run"))
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "tiny-model")
    collate = prepared.trainer.data_collator
    dataset = prepared.trainer.train_dataset
    for index in range(3):
        row = dataset[index]
        batch = collate([row])
        labels = batch["labels"][0]
        trained = tokenizer.decode(labels[labels != -100])
        answer = prepared.data.train[index]["completion"][0]["content"]
        assert trained == answer + "<|im_end|>\n", trained
    assert not (tmp_path / "run").exists(), "preparing a run writes nothing"


def test_train_on_inputs_puts_loss_on_the_prompt_too(tmp_path: Path) -> None:
    prepared = prepare_run(
        tiny_recipe(tmp_path, "lora", train_on_inputs="true"), str(tmp_path / "run")
    )
    batch = prepared.trainer.data_collator([prepared.trainer.train_dataset[0]])
    assert (batch["labels"][0] != -100).sum() == batch["attention_mask"][0].sum()


def test_packed_examples_do_not_attend_to_each_other(tmp_path: Path) -> None:
    prepared = prepare_run(
        tiny_recipe(tmp_path, "lora", sample_packing="true"), str(tmp_path / "run")
    )
    trainer = prepared.trainer
    rows = [trainer.train_dataset[i] for i in range(3)]
    packed = trainer.data_collator(rows)
    assert packed["input_ids"].shape[0] == 1 and "attention_mask" not in packed
    model = trainer.model.eval()
    with torch.no_grad():
        packed_logits = model(
            input_ids=packed["input_ids"], position_ids=packed["position_ids"]
        ).logits[0]
        start = 0
        for row in rows:
            ids = torch.tensor([row["input_ids"]])
            alone = model(input_ids=ids).logits[0]
            length = ids.shape[1]
            torch.testing.assert_close(
                packed_logits[start : start + length], alone, atol=1e-4, rtol=1e-4
            )
            start += length


class StopAt(TrainerCallback):
    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN003, ANN201
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def test_resume_reaches_the_same_weights_as_an_uninterrupted_run(tmp_path: Path) -> None:
    settings = {"max_steps": 6, "save_steps": 2, "lora_dropout": 0.1}
    whole = train(tiny_recipe(tmp_path, "lora", **settings), str(tmp_path / "whole")).run_dir
    interrupted = tmp_path / "interrupted"
    train(tiny_recipe(tmp_path, "lora", **settings), str(interrupted), callbacks=[StopAt(4)])
    assert (interrupted / "checkpoints" / "checkpoint-4").is_dir()
    resumed = train(tiny_recipe(tmp_path, "lora", **settings), str(interrupted), resume=True)
    assert resumed.metrics["steps"] == 6
    a = load_file(whole / "adapter_model.safetensors")
    b = load_file(interrupted / "adapter_model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)


def test_early_stopping_stops_and_keeps_the_best(tmp_path: Path) -> None:
    loaded = tiny_recipe(
        tmp_path, "lora", extra="val_set_size: 6\n", max_steps=40, eval_steps=1,
        early_stopping_patience=2, learning_rate=0.5, lr_scheduler="constant",
    )  # fmt: skip
    result = train(loaded, str(tmp_path / "run"))
    state = json.loads((result.run_dir / "trainer_state.json").read_text())
    evals = [h["eval_loss"] for h in state["log_history"] if "eval_loss" in h and "step" in h]
    assert result.metrics["steps"] < 40, "early stopping must end the run"
    best = min(evals[:-1]) if len(evals) > 1 else evals[0]
    assert state["best_metric"] == pytest.approx(min(evals), rel=1e-6)
    assert result.metrics["eval_loss"] == pytest.approx(state["best_metric"], rel=1e-4)
    assert best >= state["best_metric"]


def test_an_eval_logged_at_the_last_step_is_not_run_twice(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra="val_set_size: 6\n", max_steps=3, eval_steps=3)
    result = train(loaded, str(tmp_path / "run"))
    state = json.loads((result.run_dir / "trainer_state.json").read_text())
    evals = [h for h in state["log_history"] if "eval_loss" in h]
    assert [h["step"] for h in evals] == [3]  # one pass over the held-out rows, at the end
    assert result.metrics["eval_loss"] == pytest.approx(evals[0]["eval_loss"], abs=1e-6)


def test_missing_base_model_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora")
    out = tmp_path / "run"
    result = cli(
        "train",
        loaded.source,
        "--set",
        "base_model=nobody/does-not-exist",
        "--output-dir",
        str(out),
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("error: base_model: 'nobody/does-not-exist'")
    )
    assert "Traceback" not in result.stderr and not out.exists()


def test_dataset_without_usable_rows_is_refused(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora")
    empty = tmp_path / "bad.jsonl"
    empty.write_text('{"instruction": "", "output": "x"}\n{"question": "q"}\n')
    out = tmp_path / "run"
    result = cli(
        "train", loaded.source, "--set", f"datasets.0.path={empty}", "--output-dir", str(out)
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"error: {empty}: no usable rows for type alpaca (missing_instruction: 2)"
    )
    assert not out.exists()


def test_qlora_without_bitsandbytes_says_how_to_install(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "qlora")
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "bitsandbytes.py").write_text("raise ImportError('blocked for the test')\n")
    out = tmp_path / "run"
    result = cli("train", loaded.source, "--output-dir", str(out), env={"PYTHONPATH": str(blocker)})
    assert result.returncode == 2, result.stderr
    assert "pip install 'ft-plugin[qlora]'" in result.stderr.strip().splitlines()[-1]
    assert not out.exists()


def test_output_dir_holding_a_different_run_is_refused(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora")
    out = tmp_path / "run"
    train(loaded, str(out))
    before = sorted(p.name for p in out.iterdir())
    result = cli("train", loaded.source, "--set", "lora_r=8", "--output-dir", str(out))
    assert result.returncode == 2
    assert "holds a run of a different recipe" in result.stderr
    assert sorted(p.name for p in out.iterdir()) == before


def test_accelerate_launch_runs_the_same_entry_point(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora")
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "1", "--cpu",
         "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
         "-m", "ft_plugin.train", loaded.source, "--set", "max_steps=2", "--output-dir", str(out)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "done: train_loss" in result.stdout
    assert json.loads((out / "metrics.json").read_text())["steps"] == 2


@pytest.mark.parametrize("adapter", ["lora", "dora", "ia3", "qlora"])
def test_merge_writes_plain_weights_equal_to_the_adapter(tmp_path: Path, adapter: str) -> None:
    from peft import PeftModel

    from ft_plugin.merge import merge_run

    run = train(tiny_recipe(tmp_path, adapter), str(tmp_path / "run")).run_dir
    merged_dir = merge_run(run, tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir)
    assert not list(merged_dir.glob("adapter_*"))
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    base = AutoModelForCausalLM.from_pretrained(tmp_path / "tiny-model", dtype=torch.float32)
    reference = PeftModel.from_pretrained(base, run).eval()
    with torch.no_grad():
        torch.testing.assert_close(merged(ids).logits, reference(ids).logits, atol=1e-4, rtol=1e-4)


def test_merge_refuses_bottleneck_with_the_reason(tmp_path: Path) -> None:
    run = train(tiny_recipe(tmp_path, "bottleneck"), str(tmp_path / "run")).run_dir
    result = cli("merge", str(run), "--output", str(tmp_path / "merged"))
    assert result.returncode == 2
    assert "bottleneck cannot be merged" in result.stderr and "non-linearity" in result.stderr
    assert not (tmp_path / "merged").exists()


def test_rows_longer_than_sequence_len_are_dropped_not_truncated(tmp_path: Path) -> None:
    from tiny import tiny_tokenizer

    from ft_plugin.data import build_training_data
    from ft_plugin.data.preview import render_example
    from ft_plugin.errors import DataError

    recipe, tokenizer = tiny_recipe(tmp_path).recipe, tiny_tokenizer()
    everything = build_training_data(recipe.model_copy(update={"sequence_len": 4096}), tokenizer)
    lengths = sorted(render_example(tokenizer, e, 4096).full_length for e in everything.train)
    cut = lengths[len(lengths) // 2]
    data = build_training_data(recipe.model_copy(update={"sequence_len": cut}), tokenizer)
    assert len(data.train) == sum(n <= cut for n in lengths) < len(lengths)
    assert data.dropped["longer_than_sequence_len"] == sum(n > cut for n in lengths)
    assert all(render_example(tokenizer, e, 4096).full_length <= cut for e in data.train)
    with pytest.raises(DataError, match="sequence_len: .* shorter than every training example"):
        build_training_data(recipe.model_copy(update={"sequence_len": lengths[0] - 1}), tokenizer)


@pytest.mark.parametrize(
    ("bf16", "uses_peft", "load"),
    [(True, True, torch.bfloat16), (True, False, torch.float32), (False, True, torch.float32)],
)
def test_frozen_base_is_stored_in_bf16_when_bf16_trains_adapters(
    tmp_path: Path, bf16: bool, uses_peft: bool, load: torch.dtype
) -> None:
    """Autocast would otherwise cast every frozen fp32 weight on every step (the profile)."""
    from ft_plugin.engine import choose_precision

    recipe = tiny_recipe(tmp_path).recipe.model_copy(update={"bf16": bf16})
    precision = choose_precision(recipe, uses_peft)
    assert precision.bf16 is bf16 and precision.load_dtype == load
