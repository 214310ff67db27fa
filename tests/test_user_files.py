"""A user's own files through the command line: encodings, column mapping, lengths, raw text.

The files here are written by the tests (GB18030 Chinese medical rows with their own
column names, as published datasets come); `../shared/data/cmedical/` is read in place
where present for the end-to-end check on the published file.
"""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path

import pytest
import torch
from helpers import cli, tiny_recipe

REPO = Path(__file__).resolve().parent.parent
CMEDICAL = REPO.parent / "shared" / "data" / "cmedical" / "internal_medicine.csv"
ROWS = [
    ("心血管科", "高血压怎么办", "我最近体检发现血压偏高，平时需要注意什么？", "注意低盐饮食，规律作息，适量运动，定期复查血压，必要时遵医嘱服药。"),
    ("神经科", "头痛", "经常头痛，尤其是下午，应该去哪个科室看？", "建议先到神经内科就诊，记录头痛发作的时间和诱因，必要时做头颅检查。"),
    ("消化科", "胃疼", "饭后胃部隐隐作痛已经一周了，怎么办？", "建议清淡饮食，少食多餐，避免辛辣刺激，如持续不缓解请到消化科就诊。"),
    ("内分泌科", "血糖高", "空腹血糖七点二，算糖尿病吗？需要吃药吗？", "一次空腹血糖偏高不能确诊，建议复查并做糖耐量试验，由医生判断是否用药。"),
]  # fmt: skip


def write_csv(path: Path, header: list[str], rows: list[tuple[str, ...]], encoding: str) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    path.write_bytes(buffer.getvalue().encode(encoding))
    return path


def test_a_gb18030_csv_with_its_own_columns_is_read_and_the_encoding_reported(
    tmp_path: Path,
) -> None:
    source = write_csv(
        tmp_path / "im.csv", ["department", "title", "ask", "answer"], ROWS * 3, "gb18030"
    )
    out = tmp_path / "clean.jsonl"
    result = cli("data", "prepare", "--template", "medical", "--input", str(source), "--output",
                 str(out), "--tokenizer", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "encoding gb18030" in result.stdout
    report = json.loads((tmp_path / "clean.report.json").read_text(encoding="utf-8"))
    assert report["encodings"] == {str(source): "gb18030"}
    assert report["input_rows"] == 12 and report["output_rows"] == 4  # exact duplicates removed
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {r["instruction"] for r in rows} == {r[2] for r in ROWS}  # `ask` fills instruction
    assert {r["output"] for r in rows} == {r[3] for r in ROWS}


def test_a_declared_encoding_that_does_not_decode_names_the_byte(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "im.csv", ["ask", "answer"], [r[2:] for r in ROWS], "gb18030")
    out = tmp_path / "clean.jsonl"
    result = cli("data", "prepare", "--template", "medical", "--input", str(source), "--output",
                 str(out), "--tokenizer", "none", "--encoding", "utf-8")  # fmt: skip
    assert result.returncode == 2
    line = result.stderr.strip()
    offset = len(b"ask,answer\n")  # the first Chinese character
    assert line == (f"error: {source.resolve()}: byte {offset} cannot be decoded as utf-8 (invalid "
                    "continuation byte); the encoding given is not the file's: remove it to detect, or give another")  # fmt: skip
    assert not out.exists()


@pytest.mark.slow
def test_a_missing_field_names_the_columns_and_what_to_type(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "qa.csv", ["dept", "question_text", "reply"],
                       [(r[0], r[2], r[3]) for r in ROWS], "utf-8")  # fmt: skip
    out = tmp_path / "clean.jsonl"
    common = ["data", "prepare", "--template", "medical", "--input", str(source), "--output",
              str(out), "--tokenizer", "none"]  # fmt: skip
    result = cli(*common)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip() == (
        f"error: {source}: no column for the template's required field 'instruction' (template "
        "medical accepts: instruction, question, prompt, query, ask, 问题); the file's columns: dept, "
        "question_text, reply; did you mean --field instruction=question_text?"
    )
    result = cli(*common, "--field", "instruction=question_text", "--field", "output=reply")
    assert result.returncode == 0, result.stderr
    assert "4 rows in, 4 out" in result.stdout
    bad = cli(*common, "--field", "answer_col")
    assert bad.returncode == 2 and "expected NAME=COLUMN" in bad.stderr
    unknown = cli(*common, "--field", "topic=dept")
    assert unknown.returncode == 2 and "has no field 'topic'" in unknown.stderr


@pytest.mark.slow
def test_preview_and_eval_take_the_same_field_mapping_and_encoding(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "qa.csv", ["dept", "question_text", "reply"],
                       [(r[0], r[2], r[3]) for r in ROWS], "gb18030")  # fmt: skip
    model = tiny_recipe(tmp_path).recipe.base_model
    fields = ["--field", "instruction=question_text", "--field", "output=reply"]
    preview = cli("templates", "preview", "medical", "--data", str(source), "-n", "1",
                  "--base-model", model, *fields)  # fmt: skip
    assert preview.returncode == 0, preview.stderr
    assert ROWS[0][2] in preview.stdout and f"«{ROWS[0][3]}" in preview.stdout
    unmapped = cli("templates", "preview", "medical", "--data", str(source), "--base-model", model)
    assert (
        unmapped.returncode == 2
        and "did you mean --field instruction=question_text?" in unmapped.stderr
    )
    out = tmp_path / "eval"
    evaluation = cli("eval", model, "--data", str(source), "--template", "medical", "--metrics",
                     "perplexity", "--output", str(out), *fields)  # fmt: skip
    assert evaluation.returncode == 0, evaluation.stderr
    assert json.loads((out / "report.json").read_text())["data"]["rows"] == 4
    assert "perplexity" in evaluation.stdout and "{" not in evaluation.stdout  # a table, not JSON


def test_keeping_no_row_is_an_error_and_writes_nothing(tmp_path: Path) -> None:
    source = write_csv(tmp_path / "qa.csv", ["instruction", "output"], [("短", "短")], "utf-8")
    out = tmp_path / "clean.jsonl"
    result = cli("data", "prepare", "--template", "medical", "--input", str(source), "--output",
                 str(out), "--tokenizer", "none")  # fmt: skip
    assert result.returncode == 2
    assert "0 rows kept of 1 (dropped: too_short 1); nothing written" in result.stderr
    assert not out.exists() and not list(tmp_path.glob(".clean*"))


def test_length_advice_in_the_report_and_the_terminal(tmp_path: Path) -> None:
    long_rows = [("发烧三天不退，体温三十九度，怎么办？", "请多休息，多喝水，" * 40),
                 ("咳嗽两周还没好，晚上更厉害，怎么办？", "注意饮食清淡，按时服药，" * 35)]  # fmt: skip
    rows = [(r[2], r[3]) for r in ROWS] + long_rows
    source = write_csv(tmp_path / "qa.csv", ["ask", "answer"], rows, "utf-8")
    model = tiny_recipe(tmp_path).recipe.base_model
    result = cli("data", "prepare", "--template", "medical", "--input", str(source), "--output",
                 str(tmp_path / "clean.jsonl"), "--tokenizer", model, "--sequence-len", "512")  # fmt: skip
    assert result.returncode == 0, result.stderr
    stats = json.loads((tmp_path / "clean.report.json").read_text())["length_tokens"]
    assert stats["over_sequence_len"] == 2 and stats["rows"] == 6
    assert stats["sequence_len_keeping_95"] == stats["max"] > 512
    assert stats["sequence_len_keeping_99"] == stats["max"]
    assert (f"note: 2 of 6 rows (33%) are longer than sequence_len 512 and are dropped in training; "
            f"--sequence-len {stats['max']} would keep 95% of the rows") in result.stderr  # fmt: skip


@pytest.mark.slow
def test_perplexity_of_plain_text_rows_with_the_sliding_window(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = Path(tiny_recipe(tmp_path).recipe.base_model)
    texts = ["Blood pressure is measured in millimetres of mercury.", "发烧时多喝水，注意休息。"]
    notes = tmp_path / "notes.jsonl"
    notes.write_text(
        "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts), encoding="utf-8"
    )
    runs = {}
    for flag in ([], ["--type", "completion"], ["--template", "completion"]):
        out = tmp_path / f"eval{len(runs)}"
        result = cli("eval", str(model_dir), "--data", str(notes), "--metrics", "perplexity",
                     "--output", str(out), *flag)  # fmt: skip
        assert result.returncode == 0, result.stderr
        runs[tuple(flag)] = json.loads((out / "report.json").read_text())["models"]["target"][
            "perplexity"
        ]
    assert len(set(runs.values())) == 1
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    nll = count = 0.0
    with torch.no_grad():
        for text in texts:  # independent: each text in one window, every token after the first
            ids = torch.tensor([tokenizer(text)["input_ids"]])
            loss = model(input_ids=ids, labels=ids).loss.item()
            nll, count = nll + loss * (ids.shape[1] - 1), count + ids.shape[1] - 1
    assert runs[()] == pytest.approx(math.exp(nll / count), rel=1e-3)
    refused = cli("eval", str(model_dir), "--data", str(notes), "--metrics", "bleu")
    assert refused.returncode == 2 and "raw text supports --metrics perplexity" in refused.stderr


def test_val_set_size_is_a_fraction_or_a_whole_number_of_rows(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path).source
    for good in ("0.1", "4"):
        assert cli("recipes", "validate", recipe, "--set", f"val_set_size={good}").returncode == 0
    result = cli("recipes", "validate", recipe, "--set", "val_set_size=1.5")
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        "val_set_size: 1.5 is neither a fraction in [0, 1) nor a whole number of rows; write e.g. "
        "0.1 for 10% or 2 for 2 rows"
    )


def test_training_prints_no_third_party_noise(tmp_path: Path) -> None:
    result = cli("train", tiny_recipe(tmp_path, "qlora").source, "--output-dir", str(tmp_path / "run"),
                 "--set", "max_steps=1")  # fmt: skip
    assert result.returncode == 0, result.stderr
    noises = ("is_gradient_checkpointing", "kernels-community", "FutureWarning", "Loading weights")
    for noise in noises:
        assert noise not in result.stderr, noise


@pytest.mark.slow
@pytest.mark.skipif(
    not CMEDICAL.is_file(), reason=f"{CMEDICAL} not found (the shared reference data)"
)
def test_the_published_chinese_medical_file_as_it_is(tmp_path: Path) -> None:
    out = tmp_path / "clean.jsonl"
    result = cli("data", "prepare", "--template", "medical", "--input", str(CMEDICAL),
                 "--output", str(out), "--sequence-len", "512")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "clean.report.json").read_text(encoding="utf-8"))
    assert report["encodings"][str(CMEDICAL)] == "gb18030"
    assert report["input_rows"] == 6844 and 6000 < report["output_rows"] < 6844
    first = json.loads(out.read_text(encoding="utf-8").splitlines()[0])
    assert first["instruction"] and first["output"] and "department" not in first
    assert (
        "would keep 95% of the rows" in result.stderr
        or report["length_tokens"]["over_sequence_len"] == 0
    )
