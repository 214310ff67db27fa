"""Evaluation a user can read and trust: per-row answers, bootstrap intervals, groups, samples."""

from __future__ import annotations

import contextlib
import json
import math
from pathlib import Path

import numpy as np
import pytest
from helpers import cli, write_rows
from sacrebleu.metrics import BLEU, CHRF
from sklearn.metrics import f1_score
from tiny import save_tiny_model, tiny_llama, tiny_tokenizer

from ft_plugin.data.formats import GROUP, convert_rows, template_examples
from ft_plugin.evaluate.intervals import RowStatistic, paired_bootstrap, resample_counts
from ft_plugin.evaluate.text_metrics import PooledStats, generation_metrics, row_text_scores

TUNED = [62.0, 40.0, 55.0, 71.0, 12.0, 90.0, 33.0, 48.0]
BASE = [50.0, 41.0, 45.0, 60.0, 15.0, 70.0, 30.0, 40.0]
NLL = [(12.0, 5), (30.0, 9), (8.0, 4), (20.0, 6), (15.0, 5), (9.0, 3), (40.0, 10), (11.0, 4)]
DEPTS = ["心血管科", "骨科", "general"]


def test_bootstrap_equals_a_hand_written_loop() -> None:
    """Same seed, same numpy RNG, one integers(0, n, n) draw per resample, percentiles."""
    seed, resamples, n = 11, 500, len(TUNED)
    ppl = [(nll * 0.9, count) for nll, count in NLL]
    ours = paired_bootstrap(
        {"rougeL": RowStatistic.mean(TUNED), "perplexity": RowStatistic.perplexity(ppl)},
        {"rougeL": RowStatistic.mean(BASE), "perplexity": RowStatistic.perplexity(NLL)},
        resamples=resamples, seed=seed,
    )  # fmt: skip
    rng = np.random.default_rng(seed)
    tuned, base, delta, ppl_delta = [], [], [], []
    for _ in range(resamples):
        idx = rng.integers(0, n, n)
        t, b = np.mean([TUNED[i] for i in idx]), np.mean([BASE[i] for i in idx])
        tuned.append(t), base.append(b), delta.append(t - b)
        ppl_t = math.exp(sum(ppl[i][0] for i in idx) / sum(ppl[i][1] for i in idx))
        ppl_b = math.exp(sum(NLL[i][0] for i in idx) / sum(NLL[i][1] for i in idx))
        ppl_delta.append(ppl_t - ppl_b)
    for got, values in [(ours["target"]["rougeL"], tuned), (ours["baseline"]["rougeL"], base),
                        (ours["delta"]["rougeL"], delta), (ours["delta"]["perplexity"], ppl_delta)]:  # fmt: skip
        assert got == pytest.approx(list(np.percentile(values, [2.5, 97.5])), abs=1e-5)
    assert ours["delta"]["rougeL"][0] > 0  # tuned is ahead on 6 of 8 rows, by a lot


def test_resampled_bleu_chrf_and_macro_f1_equal_a_full_recomputation() -> None:
    hyps = ["the cat sat on the mat", "a dog ran", "it is raining today", "two plus two is four",
            "the sky is blue", "rest and drink water"]  # fmt: skip
    refs = ["the cat sat on a mat", "the dog ran away", "it rains today", "two plus two is four",
            "the sky looks blue", "drink water and rest"]  # fmt: skip
    truth = ["a", "b", "a", "c", "b", "a"]
    predicted = ["a", "a", None, "c", "b", "b"]
    bleu, chrf = BLEU(), CHRF()
    statistics = {
        "bleu": RowStatistic.pooled(PooledStats.of(bleu, hyps, refs)),
        "chrf": RowStatistic.pooled(PooledStats.of(chrf, hyps, refs)),
        "macro_f1": RowStatistic.macro_f1(truth, predicted, ["a", "b", "c"]),
    }
    counts = next(resample_counts(len(hyps), 20, seed=3))
    for row in counts:
        picked = [i for i, c in enumerate(row) for _ in range(int(c))]
        h, r = [hyps[i] for i in picked], [refs[i] for i in picked]
        pred = [predicted[i] or "none" for i in picked]
        expected = {
            "bleu": bleu.corpus_score(h, [r]).score,
            "chrf": chrf.corpus_score(h, [r]).score,
            "macro_f1": f1_score([truth[i] for i in picked], pred, labels=["a", "b", "c"],
                                 average="macro", zero_division=0),
        }  # fmt: skip
        for name, statistic in statistics.items():
            assert statistic.resampled(row[None, :])[0] == pytest.approx(expected[name], abs=1e-9)


def test_corpus_bleu_is_not_the_mean_of_sentence_bleu_but_rouge_is_a_mean() -> None:
    hyps = ["the cat sat on the mat today", "a dog", "rain"]
    refs = ["the cat sat on the mat", "the dog barked at night", "it will rain"]
    scores = generation_metrics(hyps, refs)
    rows = row_text_scores(hyps, refs)
    assert scores.rougeL == pytest.approx(np.mean(rows["rougeL"]))
    assert scores.rouge1 == pytest.approx(np.mean(rows["rouge1"]))
    assert abs(scores.bleu - np.mean(rows["bleu"])) > 1  # pooled n-grams, not a mean
    assert abs(scores.chrf - np.mean(rows["chrf"])) > 0.1


def test_group_value_survives_conversion_and_cleaning_but_training_gets_none() -> None:
    from ft_plugin.config.schema import DatasetSection

    rows = [{"instruction": f"Question number {i} about the heart?", "output": f"Answer {i}, see a doctor.",
             "dept": DEPTS[i % 3]} for i in range(6)]  # fmt: skip
    rows.append({"instruction": "Question number 0 about the heart?", "output": "Answer 0, see a doctor.",
                 "dept": "骨科"})  # an exact duplicate: cleaning drops it  # fmt: skip
    spec = DatasetSection(path="x.jsonl", type="medical")
    from collections import Counter

    dropped: Counter[str] = Counter()
    grouped = template_examples(rows, spec, dropped, group_by="dept")
    assert [e[GROUP] for e in grouped] == [DEPTS[i % 3] for i in range(6)] and sum(
        dropped.values()
    ) == 1
    plain = template_examples(rows, spec, Counter())
    assert all(GROUP not in e for e in plain) and [e["prompt"] for e in plain] == [
        e["prompt"] for e in grouped
    ]
    alpaca = convert_rows(rows, DatasetSection(path="x.jsonl", type="alpaca"), group_by="dept")
    assert [e[GROUP] for e in alpaca.examples] == [r["dept"] for r in rows]  # fmt: skip


@pytest.fixture(scope="module")
def model_and_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    tmp = tmp_path_factory.mktemp("intervals")
    rows = [{"instruction": f"What is {a} plus {b}?", "output": f"{a} plus {b} is {a + b}.",
             "dept": DEPTS[(a * 4 + b) % 3]} for a in range(6) for b in range(5)]  # fmt: skip
    return save_tiny_model(tmp / "model"), write_rows(tmp / "rows.jsonl", rows)


def _settings(data: Path, **overrides: object):  # noqa: ANN202
    from ft_plugin.evaluate.runner import EvalSettings

    base = {"data": str(data), "metrics": ["perplexity", "bleu", "chrf", "rouge1", "rougeL"],
            "max_new_tokens": 6, "bootstrap": 200}  # fmt: skip
    return EvalSettings(**{**base, **overrides})


def test_a_model_against_itself_changes_nothing_and_is_not_distinguishable(model_and_rows) -> None:  # noqa: ANN001
    from ft_plugin.evaluate.runner import evaluate_loaded
    from ft_plugin.evaluate.targets import LoadedTarget

    _, data = model_and_rows
    model = tiny_llama().eval()
    same = LoadedTarget("tiny", tiny_tokenizer(), model, None, None, 0,
                        baseline=lambda: contextlib.nullcontext(model))  # fmt: skip
    report, _, _ = evaluate_loaded(same, _settings(data, baseline=True, max_samples=8))
    intervals = report.intervals
    assert set(intervals["delta"]) == {"perplexity", "bleu", "chrf", "rouge1", "rougeL"}
    for metric, (low, high) in intervals["delta"].items():
        assert low <= 0 <= high and report.delta[metric] == 0, metric
        assert report.distinguishable[metric] is False
    assert intervals["target"] == intervals["baseline"]


@pytest.mark.slow
def test_predictions_groups_and_a_seeded_sample(model_and_rows, tmp_path: Path) -> None:  # noqa: ANN001
    from ft_plugin.evaluate.folder import evaluate_to_folder

    model, data = model_and_rows
    given = [json.loads(line) for line in data.read_text(encoding="utf-8").splitlines()]
    out = evaluate_to_folder(str(model), _settings(data, max_samples=12, group_by="dept", seed=5),
                             tmp_path / "eval")  # fmt: skip
    report = out.report
    assert report["data"] == {**report["data"], "rows": 12, "rows_given": 30, "sampled": True}
    predictions = [json.loads(line) for line in (out.folder / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]  # fmt: skip
    assert [p["id"] for p in predictions] == list(range(12))
    chosen = [
        next(i for i, r in enumerate(given) if r["instruction"] == p["prompt"]) for p in predictions
    ]
    assert chosen == sorted(chosen) and chosen != list(range(12))  # in order, not the first 12
    assert all(p["group"] == given[i]["dept"] for p, i in zip(predictions, chosen, strict=True))
    for name in ("rouge1", "rougeL"):  # per-row ROUGE averages to the corpus ROUGE
        mean = np.mean([p["tuned_scores"][name] for p in predictions])
        assert report["models"]["target"][name] == pytest.approx(mean, abs=1e-3)
    groups = report["groups"]
    assert sum(g["rows"] for g in groups.values()) == 12 and set(groups) <= set(DEPTS)
    for entry in groups.values():
        assert set(entry["intervals"]["target"]) == set(report["intervals"]["target"])
    raw = (out.folder / "report.json").read_text(encoding="utf-8")
    assert "心血管科" in raw and "\\u5fc3" not in raw
    assert "心血管科" in (out.folder / "predictions.jsonl").read_text(encoding="utf-8")
    md = out.markdown.read_text(encoding="utf-8")
    assert (
        "evaluated 12 of 30 rows" in md
        and "## By group (`dept`)" in md
        and "## Answers side by side" in md
    )
    assert (out.folder / "groups.png").read_bytes()[:4] == b"\x89PNG"
    again = evaluate_to_folder(str(model), _settings(data, max_samples=12, group_by="dept", seed=5),
                               tmp_path / "again")  # fmt: skip
    assert again.report["intervals"] == report["intervals"]
    assert (again.folder / "predictions.jsonl").read_text() == (
        out.folder / "predictions.jsonl"
    ).read_text()


def test_classification_predictions_carry_truth_and_labels(tmp_path: Path) -> None:
    from ft_plugin.evaluate.folder import evaluate_to_folder
    from ft_plugin.evaluate.runner import EvalSettings

    model = save_tiny_model(tmp_path / "model")
    labels = ["bearish", "bullish", "neutral"]
    data = write_rows(
        tmp_path / "fs.jsonl",
        [{"text": f"Item {i} moves", "label": labels[i % 3]} for i in range(9)],
    )
    out = evaluate_to_folder(str(model), EvalSettings(data=str(data), template="finance-sentiment",
                             metrics=["accuracy", "macro_f1"], bootstrap=100), tmp_path / "eval")  # fmt: skip
    rows = [
        json.loads(line) for line in (out.folder / "predictions.jsonl").read_text().splitlines()
    ]
    assert [r["truth"] for r in rows] == [labels[i % 3] for i in range(9)]
    accuracy = np.mean([r["tuned_predicted"] == r["truth"] for r in rows])
    assert out.report["models"]["target"]["accuracy"] == pytest.approx(accuracy)
    low, high = out.report["intervals"]["target"]["accuracy"]
    assert 0 <= low <= accuracy <= high <= 1


@pytest.mark.slow
def test_cli_shows_rows_and_intervals_and_refuses_an_unknown_group_column(
    model_and_rows, tmp_path: Path
) -> None:  # noqa: ANN001
    model, data = model_and_rows
    result = cli(
        "eval",
        str(model),
        "--data",
        str(data),
        "--group-by",
        "ward",
        "--output",
        str(tmp_path / "x"),
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .endswith(
            f"{data}: --group-by 'ward': no such column; the file's columns: instruction, output, dept"
        )
    )
    result = cli("eval", str(model), "--data", str(data), "--metrics", "perplexity,chrf", "--max-new-tokens", "4",
                 "--max-samples", "10", "--bootstrap", "100", "--group-by", "dept", "--output", str(tmp_path / "e"))  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert (
        "evaluated 10 of 30 rows (seeded random sample; --max-samples 0 for all)" in result.stdout
    )
    assert "95% interval" in result.stdout and "groups by dept (rows):" in result.stdout
    report = json.loads((tmp_path / "e" / "report.json").read_text(encoding="utf-8"))
    assert report["settings"]["bootstrap"] == 100 and report["data"]["sampled"] is True


@pytest.mark.slow
def test_group_by_on_a_runs_own_held_out_split(tmp_path: Path) -> None:
    from helpers import tiny_recipe

    from ft_plugin.data import build_training_data
    from ft_plugin.evaluate.folder import evaluate_to_folder
    from ft_plugin.evaluate.runner import EvalSettings
    from ft_plugin.train import train

    rows = [{"instruction": f"What is {a} plus {b}?", "output": f"{a} plus {b} is {a + b}.",
             "dept": DEPTS[(a * 4 + b) % 3]} for a in range(6) for b in range(5)]  # fmt: skip
    loaded = tiny_recipe(tmp_path, "lora", extra="val_set_size: 9\n", max_steps=2)
    write_rows(Path(loaded.recipe.datasets[0].path), rows)
    run = train(loaded, str(tmp_path / "run")).run_dir
    plain = build_training_data(loaded.recipe).eval
    grouped = build_training_data(loaded.recipe, group_by="dept").eval
    assert plain["prompt"] == grouped["prompt"]  # the split is the one training held out
    settings = EvalSettings(baseline=True, metrics=["perplexity", "rougeL"], max_new_tokens=4,
                            bootstrap=50, group_by="dept")  # fmt: skip
    report = evaluate_to_folder(str(run), settings).report
    counts = {name: group["rows"] for name, group in report["groups"].items()}
    by_prompt = {r["instruction"]: r["dept"] for r in rows}
    expected: dict[str, int] = {}
    for messages in grouped["prompt"]:
        dept = by_prompt[messages[-1]["content"]]
        expected[dept] = expected.get(dept, 0) + 1
    assert counts == expected and sum(counts.values()) == report["data"]["rows"] == 9
