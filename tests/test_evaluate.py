"""Evaluation on tiny models: metrics against independent computations, reports, bad input."""

from __future__ import annotations

import io
import json
import math
import sys
from pathlib import Path

import pytest
import torch
from helpers import cli, full_pass_label_score, tiny_recipe, write_rows
from tiny import save_tiny_model, tiny_llama, tiny_tokenizer

from ft_plugin.evaluate.perplexity import corpus_perplexity
from ft_plugin.evaluate.scoring import (
    label_log_likelihoods,
    predict_label,
    predict_labels,
    score_labels,
)

CHAT = [
    {"prompt": [{"role": "user", "content": "What is 2 plus 2?"}], "completion": [{"role": "assistant", "content": "4"}]},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "发烧怎么办？"}],
     "completion": [{"role": "assistant", "content": "多喝水，注意休息。"}]},
    {"prompt": [{"role": "user", "content": "Name a colour."}], "completion": [{"role": "assistant", "content": "Blue, like the sky."}]},
]  # fmt: skip


def test_perplexity_matches_plain_transformers_on_answer_tokens() -> None:
    model, tokenizer = tiny_llama().eval(), tiny_tokenizer()
    ours = corpus_perplexity(model, tokenizer, CHAT, sequence_len=512)
    total, count = 0.0, 0
    for example in CHAT:  # independent: HF's own loss with prompt positions masked
        prompt_len = len(
            tokenizer.apply_chat_template(
                example["prompt"], add_generation_prompt=True, tokenize=True, return_dict=True
            )["input_ids"]
        )
        ids = tokenizer.apply_chat_template(
            example["prompt"] + example["completion"], tokenize=True, return_dict=True
        )["input_ids"]
        labels = torch.tensor([[-100] * prompt_len + ids[prompt_len:]])
        with torch.no_grad():
            loss = model(input_ids=torch.tensor([ids]), labels=labels).loss
        n = len(ids) - prompt_len
        total, count = total + float(loss) * n, count + n
    expected = math.exp(total / count)
    assert ours.tokens == count
    assert ours.perplexity == pytest.approx(expected, rel=0.005)


def test_perplexity_of_long_text_uses_a_sliding_window() -> None:
    model, tokenizer = tiny_llama().eval(), tiny_tokenizer()
    text = "Contract law governs agreements between parties. " * 12  # ~600 byte tokens
    ours = corpus_perplexity(model, tokenizer, [{"text": text}], sequence_len=128, stride=64)
    ids = tokenizer(text)["input_ids"]
    # independent: the Hugging Face perplexity guide's strided loop
    nlls, counted, prev_end = [], 0, 0
    for begin in range(0, len(ids), 64):
        end = min(begin + 128, len(ids))
        target_len = end - prev_end
        input_ids = torch.tensor([ids[begin:end]])
        labels = input_ids.clone()
        labels[:, :-target_len] = -100
        labels[0, 0] = -100
        with torch.no_grad():
            loss = model(input_ids, labels=labels).loss
        n = int((labels[0, 1:] != -100).sum())
        nlls.append(float(loss) * n)
        counted += n
        prev_end = end
        if end == len(ids):
            break
    assert ours.tokens == counted == len(ids) - 1
    assert ours.perplexity == pytest.approx(math.exp(sum(nlls) / counted), rel=0.005)


def test_label_scoring_picks_the_most_likely_label() -> None:
    model, tokenizer = tiny_llama(seed=3).eval(), tiny_tokenizer()
    example = {"prompt": [{"role": "user", "content": "Sentiment: shares soar"}], "completion": []}
    labels = ["bearish", "bullish", "neutral"]
    scores = label_log_likelihoods(model, tokenizer, example, labels)
    for label, score in zip(labels, scores, strict=True):  # independent, one label at a time
        assert score == pytest.approx(
            full_pass_label_score(model, tokenizer, example["prompt"], label), abs=1e-3
        )
    assert predict_label(model, tokenizer, example, labels) == labels[scores.index(max(scores))]


@pytest.mark.parametrize("batch_size", [1, 2, 8])
def test_batched_label_scoring_equals_full_passes(batch_size: int) -> None:
    """Shared system prompt, prompts of different lengths, labels of different lengths."""
    model, tokenizer = tiny_llama(seed=5).eval(), tiny_tokenizer()
    system = {"role": "system", "content": "Classify the headline. Answer with one word."}
    texts = ["Up", "Shares of Acme fall 12% after a profit warning", "Flat day", "Q3 beats"]
    examples = [
        {"prompt": [system, {"role": "user", "content": t}], "completion": []} for t in texts
    ]
    examples.append(
        {"prompt": [{"role": "user", "content": "no system prompt here"}], "completion": []}
    )
    labels = ["down", "up", "no change at all"]
    scores = score_labels(model, tokenizer, examples, labels, batch_size=batch_size)
    expected = [
        [full_pass_label_score(model, tokenizer, e["prompt"], lab) for lab in labels]
        for e in examples
    ]
    assert scores == [pytest.approx(row, abs=1e-3) for row in expected]
    best = [labels[row.index(max(row))] for row in expected]
    assert predict_labels(model, tokenizer, examples, labels, batch_size=batch_size) == best


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ft_plugin.train import train

    tmp = tmp_path_factory.mktemp("evalrun")
    loaded = tiny_recipe(tmp, "lora", extra="val_set_size: 6\n", max_steps=4)
    return train(loaded, str(tmp / "run")).run_dir


def test_base_vs_tuned_report_on_a_tiny_run(tiny_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = cli("eval", str(tiny_run), "--baseline", "--metrics", "perplexity,bleu,chrf,rouge1,rougeL,latency",
                 "--max-new-tokens", "8", "--price-per-hour", "2.0", "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    # the longest part announced (a terminal also gets a bar), the weights' loading bar not
    assert (
        "ft-plugin: generating 6 rows × 2 models (target, baseline), up to 8 new tokens each\n"
        in result.stderr
    )
    assert "Loading weights" not in result.stderr
    report = json.loads((out / "report.json").read_text())
    target, baseline = report["models"]["target"], report["models"]["baseline"]
    for name in ("perplexity", "bleu", "chrf", "rouge1", "rougeL", "latency_ms_p50", "latency_ms_p95",
                 "tokens_per_second", "peak_memory_mb", "cost_per_1k_requests"):  # fmt: skip
        assert name in target and name in baseline, name
    assert target["weights_size_mb"] == pytest.approx(
        (tiny_run / "adapter_model.safetensors").stat().st_size / 2**20, abs=1e-3
    )
    assert report["delta"]["perplexity"] == pytest.approx(
        target["perplexity"] - baseline["perplexity"], abs=1e-5
    )
    assert target["perplexity"] != baseline["perplexity"]
    assert report["data"]["rows"] == 6 and "held-out" in report["data"]["source"]
    assert (out / "training_curves.png").is_file() and "| perplexity |" in (
        out / "report.md"
    ).read_text()


def test_classification_report_with_confusion_matrix(tmp_path: Path) -> None:
    model_dir = save_tiny_model(tmp_path / "model")
    data = tmp_path / "fs.jsonl"
    data.write_text(
        "".join(
            json.dumps(
                {"text": f"Item {i} moves", "label": ["bearish", "bullish", "neutral"][i % 3]}
            )
            + "\n"
            for i in range(9)
        )
    )
    out = tmp_path / "eval"
    result = cli("eval", str(model_dir), "--data", str(data), "--template", "finance-sentiment",
                 "--metrics", "accuracy,macro_f1", "--output", str(out))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    metrics = report["models"]["target"]
    assert 0 <= metrics["accuracy"] <= 1 and 0 <= metrics["macro_f1"] <= 1
    assert metrics["accuracy"] * 9 == pytest.approx(round(metrics["accuracy"] * 9))
    assert (out / "confusion_target.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_bad_input_gives_one_line_and_exit_2(tiny_run: Path, tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    result = cli("eval", str(tiny_run), "--data", str(empty), "--output", str(tmp_path / "e1"))
    assert result.returncode == 2 and result.stderr.strip().endswith(
        f"{empty}: no rows to evaluate (the file is empty)"
    )
    rows = write_rows(tmp_path / "rows.jsonl")
    result = cli(
        "eval",
        str(tiny_run),
        "--data",
        str(rows),
        "--metrics",
        "accuracy",
        "--output",
        str(tmp_path / "e2"),
    )
    assert (
        result.returncode == 2
        and "declares no labels" in result.stderr
        and "Traceback" not in result.stderr
    )
    broken = tmp_path / "broken_run"
    broken.mkdir()
    (broken / "recipe.yaml").write_text((tiny_run / "recipe.yaml").read_text())
    result = cli("eval", str(broken), "--output", str(tmp_path / "e3"))
    assert result.returncode == 2 and "no adapter (adapter_config.json)" in result.stderr
    assert not any((tmp_path / d).exists() for d in ("e1", "e2", "e3"))


@pytest.mark.slow
def test_human_sheet_then_imported_ratings_land_in_the_report(
    tiny_run: Path, tmp_path: Path
) -> None:
    import csv

    out = tmp_path / "eval"
    sheet = tmp_path / "sheet.csv"
    result = cli("eval", str(tiny_run), "--metrics", "perplexity", "--max-samples", "3", "--max-new-tokens", "6",
                 "--output", str(out), "--human-sheet", str(sheet))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader(sheet.open(encoding="utf-8")))
    key = {r["id"]: r for r in csv.DictReader((tmp_path / "sheet.key.csv").open(encoding="utf-8"))}
    assert len(rows) == 3 and "tuned" not in sheet.read_text()
    for rater in ("ann", "bob"):
        filled = tmp_path / f"ratings_{rater}.csv"
        with filled.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            for row in rows:
                tuned_is_a = key[row["id"]]["a"] == "tuned"
                row = {**row, "rater": rater, "preference": "a" if tuned_is_a else "b"}
                for criterion in ("relevance", "accuracy", "readability"):
                    row[f"{criterion}_a"], row[f"{criterion}_b"] = (
                        ("5", "2") if tuned_is_a else ("2", "5")
                    )
                writer.writerow(row)
    result = cli("eval", str(tiny_run), "--output", str(out), "--import-ratings",
                 str(tmp_path / "ratings_ann.csv"), str(tmp_path / "ratings_bob.csv"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    human = json.loads((out / "report.json").read_text())["human"]
    assert human["tuned_accuracy_mean"] == 5 and human["base_accuracy_mean"] == 2
    assert human["preference_tuned"] == 1.0 and human["raters"] == 2
    assert "## Human ratings" in (out / "report.md").read_text()
    bad = tmp_path / "ratings_bad.csv"
    bad.write_text(
        (tmp_path / "ratings_ann.csv").read_text(encoding="utf-8").replace(",5,", ",great,", 1),
        encoding="utf-8",
    )
    result = cli("eval", "--import-ratings", str(bad), "--output", str(tmp_path / "x"))
    assert (
        result.returncode == 2
        and "ratings_bad.csv:2:" in result.stderr
        and "'great'" in result.stderr
    )


@pytest.mark.slow
def test_the_recipes_eval_section_sets_what_eval_does_unless_the_command_line_says(
    tmp_path: Path,
) -> None:
    from ft_plugin.train import train

    extra = "val_set_size: 8\neval:\n  max_samples: 3\n  metrics: [perplexity]\n  baseline: true\n"
    run = train(
        tiny_recipe(tmp_path, "lora", extra=extra, max_steps=2), str(tmp_path / "run")
    ).run_dir
    result = cli("eval", str(run), "--output", str(tmp_path / "e1"))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "e1" / "report.json").read_text())
    assert report["data"]["rows"] == 3 and report["data"]["rows_given"] == 8
    assert list(report["models"]["target"]) == ["perplexity"] and "baseline" in report["models"]
    assert "3 of 8 rows" in result.stdout
    result = cli(
        "eval", str(run), "--no-baseline", "--max-samples", "0", "--output", str(tmp_path / "e2")
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "e2" / "report.json").read_text())
    assert report["data"]["rows"] == 8 and "baseline" not in report["models"]


class Terminal(io.StringIO):
    """stderr as a person's terminal (tqdm draws its bars only there)."""

    def isatty(self) -> bool:
        return True


def test_batched_answers_equal_one_request_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """--generation-batch-size: left-padded greedy batches give each row the same answer
    as batch 1 (prompts of different lengths, so the padding is exercised); on a terminal
    both show a bar of the rows answered."""
    from ft_plugin.evaluate.generation import generate_answers
    from tests.tiny import tiny_llama, tiny_tokenizer

    model, tokenizer = tiny_llama().eval(), tiny_tokenizer()
    questions = ["a", "what is a fever?", "bp 140/90, is that high? and what now", "cough"]
    examples = [{"prompt": [{"role": "user", "content": q}]} for q in questions]
    monkeypatch.setattr(sys, "stderr", Terminal())
    one = generate_answers(model, tokenizer, examples, max_new_tokens=12, desc="one: target")
    batched = generate_answers(model, tokenizer, examples, max_new_tokens=12, batch_size=3,
                               desc="batched: target")  # fmt: skip
    assert batched.texts == one.texts
    assert len(batched.latencies_ms) == len(examples)
    shown = sys.stderr.getvalue()
    assert "one: target:   0%" in shown and "batched: target:   0%" in shown
    assert shown.count("0/4 [") >= 2


@pytest.mark.parametrize("adapter", ["lora", "bottleneck", "full"])
def test_bfloat16_evaluation_loads_bf16_weights_and_stays_near_float32(
    adapter: str, tmp_path: Path
) -> None:
    """--dtype bfloat16: every kind of run loads its weights in bf16 (the adapter's too:
    PEFT would upcast it to float32), the report records the dtype, and perplexity stays
    within 1% of float32."""
    import torch

    from ft_plugin.evaluate.runner import EvalSettings, run_evaluation
    from ft_plugin.train import train

    run = train(
        tiny_recipe(tmp_path, adapter, extra="val_set_size: 6\n", max_steps=2), str(tmp_path / "r")
    ).run_dir
    scored = {}
    for dtype in ("float32", "bfloat16"):
        settings = EvalSettings(metrics=["perplexity"], baseline=adapter != "full", dtype=dtype)
        report, results, loaded, _ = run_evaluation(str(run), settings)
        assert loaded.model.get_input_embeddings().weight.dtype == getattr(torch, dtype)
        assert {p.dtype for p in loaded.model.parameters()} == {getattr(torch, dtype)}
        assert report.settings["dtype"] == dtype
        scored[dtype] = {role: r.metrics["perplexity"] for role, r in results.items()}
    for role, value in scored["float32"].items():
        assert scored["bfloat16"][role] == pytest.approx(value, rel=0.01), role


def test_an_unknown_evaluation_dtype_is_refused_in_one_line(tiny_run: Path) -> None:
    result = cli("eval", str(tiny_run), "--dtype", "float16")
    assert result.returncode == 2 and "invalid choice: 'float16'" in result.stderr
