"""`ft-plugin data prepare` and data loading: planted dirt, exact report counts, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import cli

from ft_plugin.config.schema import DatasetSection
from ft_plugin.data.build import build_examples
from ft_plugin.data.reading import read_rows
from ft_plugin.errors import DataError

A = {
    "instruction": "How much water should an adult drink each day?",
    "input": "",
    "output": "Most adults need about two to three litres of fluid every day, and more in hot "
    "weather or during hard exercise.",
}
B = {
    "instruction": "高血压患者日常生活中应该注意哪些问题？",
    "input": "",
    "output": "应减少盐的摄入，保持规律运动，戒烟限酒，按时服药，并定期测量血压，如有头痛胸闷应及时就医。",
}
DIRTY = [
    A,
    dict(A),  # exact duplicate
    {**A, "output": A["output"].replace("hard exercise", "heavy exercise")},  # near duplicate (en)
    B,
    {**B, "output": B["output"].replace("规律运动", "适量运动")},  # near duplicate (zh)
    {"instruction": "What is a fever?", "output": "   "},  # empty
    {"instruction": "What is a fever?"},  # missing
    {"instruction": "What is a fever?", "output": ["a list"]},  # wrong type
    {"instruction": "How do I treat a mild headache?",
     "output": "<p>Take <b>paracetamol</b> as directed &amp; rest in a quiet room.</p>"},
    {"instruction": "Can you call me about my results?",
     "input": "Contact me at jane.doe@example.com or +44 20 7946 0958",
     "output": "A nurse will contact you through the clinic's secure system."},
    {"instruction": "Why was I billed twice for my visit?",
     "input": "My card 4111 1111 1111 1111 was charged twice.",
     "output": "Please contact the billing office; duplicate charges are usually refunded within a week."},
    {"instruction": "Summarise this.", "output": "word " * 1500},  # over the template's max_chars
]  # fmt: skip


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8"
    )
    return path


def test_prepare_removes_planted_dirt_with_exact_counts(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "dirty.jsonl", DIRTY)
    out = tmp_path / "clean.jsonl"
    result = cli("data", "prepare", "--template", "medical", "--input", str(source),
                 "--output", str(out), "--tokenizer", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "clean.report.json").read_text())
    assert report["input_rows"] == 12 and report["output_rows"] == 5
    assert report["dropped"] == {
        "exact_duplicate": 1, "near_duplicate": 2, "empty_field:output": 1,
        "missing_field:output": 1, "wrong_type:output": 1, "too_long": 1,
    }  # fmt: skip
    assert report["modified"]["html_stripped"] == 1 and report["modified"]["pii_redacted"] == 2
    assert report["pii"] == {"CARD": 1, "EMAIL": 1, "PHONE": 1}
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    text = json.dumps(rows, ensure_ascii=False)
    assert "jane.doe@example.com" not in text and "4111" not in text and "7946" not in text
    assert "[EMAIL]" in text and "[PHONE]" in text and "[CARD]" in text
    assert rows[2]["output"] == "Take paracetamol as directed & rest in a quiet room."
    assert sum("高血压" in r["instruction"] for r in rows) == 1
    assert (tmp_path / "clean.report.md").read_text().startswith("# Data report: medical")


@pytest.mark.slow
def test_prepare_classification_reports_labels_balances_and_plots(tmp_path: Path) -> None:
    rows = [
        {"text": f"Shares of Company{i} rise after strong quarter {i}", "label": "bullish"}
        for i in range(6)
    ]
    rows += [
        {"text": f"Company{i} misses estimates and cuts its outlook for year {i}", "label": 0}
        for i in range(3)
    ]
    rows += [{"text": "Ticker moves sideways", "label": "flat"}]
    source = write_jsonl(tmp_path / "fs.jsonl", rows)
    out = tmp_path / "fs.out.jsonl"
    result = cli("data", "prepare", "--template", "finance-sentiment", "--input", str(source),
                 "--output", str(out), "--balance", "oversample", "--topics", "2",
                 "--near-dup", "off", "--tokenizer", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "fs.out.report.json").read_text())
    assert report["dropped"] == {"unknown_label": 1}
    assert report["labels_before_balance"] == {"bearish": 3, "bullish": 6}
    assert report["labels"] == {"bearish": 6, "bullish": 6, "neutral": 0}
    assert report["balance"]["added"] == 3
    assert report["output_rows"] == 12
    assert sum(c["size"] for c in report["topics"]["clusters"]) == 12
    for plot in ("labels", "topics"):
        assert (tmp_path / f"fs.out.report.{plot}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_prepare_augments_from_the_template_tables(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "m.jsonl", [
        {"instruction": "Is hypertension dangerous?", "output": "Untreated hypertension raises the risk of stroke."},
    ])  # fmt: skip
    out = tmp_path / "aug.jsonl"
    result = cli("data", "prepare", "--template", "medical", "--input", str(source), "--output", str(out),
                 "--augment", "template,synonym", "--tokenizer", "none")  # fmt: skip
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    kinds = [r.get("_augmented") for r in rows]
    assert kinds.count(None) == 1 and kinds.count("synonym") == 1
    assert kinds.count("template") == 4 * 3  # 4 conditions x 3 groups
    synonym = next(r for r in rows if r.get("_augmented") == "synonym")
    assert "high blood pressure" in synonym["instruction"].lower() + synonym["output"].lower()


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (
            '{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": \n',
            "bad.jsonl:2: invalid JSON",
        ),
        ("[1, 2]\n", "bad.jsonl:1: expected a JSON object, got list"),
        (
            b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe",
            "bad.jsonl: not text in any encoding charset-normalizer knows (a binary file?)",
        ),
    ],
)
@pytest.mark.slow
def test_malformed_input_is_one_line_with_file_and_line(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(content if isinstance(content, bytes) else content.encode())
    result = cli("data", "prepare", "--template", "medical", "--input", str(bad),
                 "--output", str(tmp_path / "o.jsonl"), "--tokenizer", "none")  # fmt: skip
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0] and str(bad) in lines[0]
    assert not (tmp_path / "o.jsonl").exists()


def test_unknown_column_mapping_names_the_column_and_the_key(tmp_path: Path) -> None:
    source = write_jsonl(tmp_path / "d.jsonl", [{"q": "x", "a": "y"}])
    spec = DatasetSection(
        path=str(source), type="alpaca", field_instruction="question", field_output="a"
    )
    with pytest.raises(DataError) as info:
        build_examples([spec], seed=0)
    assert (
        str(info.value)
        == f"{source}: column 'question' (datasets.0.field_instruction) not found; columns: a, q"
    )


def test_every_file_format_loads_the_same_rows(tmp_path: Path) -> None:
    import datasets

    rows = [{"instruction": "Q1", "output": "A1"}, {"instruction": "问题二", "output": "答案二"}]
    write_jsonl(tmp_path / "d.jsonl", rows)
    (tmp_path / "d.json").write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    (tmp_path / "d.csv").write_text("instruction,output\nQ1,A1\n问题二,答案二\n", encoding="utf-8")
    (tmp_path / "d.tsv").write_text(
        "instruction\toutput\nQ1\tA1\n问题二\t答案二\n", encoding="utf-8"
    )
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "d.parquet"))
    datasets.Dataset.from_list(rows).save_to_disk(str(tmp_path / "saved"))
    for name in ("d.jsonl", "d.json", "d.csv", "d.tsv", "d.parquet", "saved"):
        assert read_rows(str(tmp_path / name)) == rows, name


def test_missing_file_and_unknown_builtin_are_clear(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nothere.csv: no such file"):
        read_rows(str(tmp_path / "nothere.csv"))
    with pytest.raises(DataError, match=r"builtin:nope: no such builtin dataset; known: .*medical"):
        read_rows("builtin:nope")


def test_weighted_mixing_draws_rows_in_proportion(tmp_path: Path) -> None:
    a = write_jsonl(
        tmp_path / "a.jsonl", [{"instruction": f"a{i}", "output": "x"} for i in range(10)]
    )
    b = write_jsonl(
        tmp_path / "b.jsonl", [{"instruction": f"b{i}", "output": "y"} for i in range(10)]
    )
    specs = [DatasetSection(path=str(a), weight=2.0), DatasetSection(path=str(b), weight=0.5)]
    examples, _ = build_examples(specs, seed=1)
    firsts = [e["prompt"][0]["content"][0] for e in examples]
    assert firsts.count("a") == 20 and firsts.count("b") == 5


def test_long_completion_text_is_chunked_into_windows_not_truncated(tmp_path: Path) -> None:
    from tiny import tiny_tokenizer

    from ft_plugin.data.build import token_chunker

    text = "Domain text about contracts. " * 40  # ~1160 byte tokens
    source = write_jsonl(tmp_path / "c.jsonl", [{"text": text}])
    spec = DatasetSection(path=str(source), type="completion", chunk_overlap=16)
    examples, _ = build_examples([spec], seed=0, chunker=token_chunker(tiny_tokenizer(), 256))
    assert len(examples) > 4
    pieces = [e["text"] for e in examples]
    assert all(len(tiny_tokenizer()(p)["input_ids"]) <= 255 for p in pieces)
    assert set("".join(pieces)) == set(text)


# A patient's question and a doctor's answer under names the medical template does not
# accept (a cMedQA-style file): the department repeats, the title is a short question.
ASKED = [
    ("内科", "头痛失眠？", "最近总是头痛，晚上也睡不好，这是怎么回事？",
     "头痛伴失眠多与精神紧张、作息不规律有关，建议规律作息、减少咖啡因摄入；若头痛加重或伴呕吐、"
     "视物模糊，应尽快到神经内科就诊。"),
    ("内科", "血压高吃药？", "量了几次血压都是160/100，需要吃药吗？",
     "这个血压已属于二级高血压，一般需要在医生指导下开始服用降压药，同时低盐饮食、控制体重、"
     "戒烟限酒，并每天定时测量血压做好记录。"),
    ("内科", "糖尿病吃水果？", "我有糖尿病，平时可以吃水果吗？吃多少合适？",
     "血糖控制平稳时可以适量吃水果，选择苹果、柚子等含糖较低的品种，放在两餐之间吃，每次不超过"
     "两百克，并注意监测餐后血糖的变化。"),
    ("内科", "咳嗽要拍片？", "咳嗽两周了还没好，要不要去医院拍片子？",
     "咳嗽超过两周建议到医院就诊，医生会根据听诊情况决定是否需要拍胸片或做血常规检查，以排除"
     "肺炎、支气管炎或过敏等原因，不要自行长期服用止咳药。"),
    ("内科", "心慌胸闷？", "经常心慌胸闷，是不是心脏病？",
     "心慌胸闷可能由心律失常、贫血、甲状腺功能亢进或焦虑引起，并不一定是心脏病，建议先做"
     "心电图和血常规检查，明确原因后再对症治疗。"),
]  # fmt: skip
ASKED_COLUMNS = ["科室", "标题", "病人提问", "医生回答"]


def _missing_field_message(template: str, rows: list[dict], mapping: dict[str, str]) -> str:
    from ft_plugin.data.columns import check_columns
    from ft_plugin.data.templates import load_template

    with pytest.raises(DataError) as info:
        check_columns(load_template(template), "rows.csv", rows, mapping)
    return str(info.value)


@pytest.mark.slow
def test_a_missing_field_is_suggested_from_what_the_columns_hold(tmp_path: Path) -> None:
    """Questions (?/？) fill the field that asks, the full question over its title; the
    longer text that is not questions fills the answer: never the answer for instruction."""
    source = tmp_path / "internal_medicine.csv"
    lines = [",".join(ASKED_COLUMNS), *(",".join(row) for row in ASKED)]
    source.write_bytes(("\n".join(lines) + "\n").encode("gb18030"))
    out = tmp_path / "clean.jsonl"
    common = ["data", "prepare", "--template", "medical", "--input", str(source), "--output",
              str(out), "--tokenizer", "none"]  # fmt: skip
    result = cli(*common)
    assert result.returncode == 2 and not out.exists()
    assert result.stderr.strip().endswith("did you mean --field instruction=病人提问?")
    result = cli(*common, "--field", "instruction=病人提问")
    assert result.returncode == 2
    assert result.stderr.strip().endswith("did you mean --field output=医生回答?")
    rows = [dict(zip(ASKED_COLUMNS, row, strict=True)) for row in ASKED]
    assert _missing_field_message("medical", rows, {}).endswith("--field instruction=病人提问?")


def test_english_columns_are_suggested_by_content_and_unsure_means_no_suggestion() -> None:
    asked = [
        ("heart", "My heart races at night. Is that dangerous?",
         "A racing heart at night is often harmless (caffeine, stress or alcohol), but with chest "
         "pain, fainting or breathlessness see a doctor soon and ask for an ECG."),
        ("heart", "Can I exercise with high blood pressure?",
         "Yes: regular moderate exercise such as brisk walking lowers blood pressure; avoid heavy "
         "lifting until it is controlled, and ask your doctor before starting anything intense."),
        ("skin", "What helps an itchy rash on my arms?",
         "Cool compresses, fragrance-free moisturiser and an antihistamine usually help; see a "
         "doctor if the rash spreads, blisters, or comes with fever or swelling of the face."),
        ("skin", "Should I worry about a mole that changed colour?",
         "A mole that changes colour, size or shape should be checked by a doctor within a few "
         "weeks, as early skin cancers are easy to treat when they are found early."),
    ]  # fmt: skip
    rows = [dict(zip(["topic", "message", "reply"], row, strict=True)) for row in asked]
    assert _missing_field_message("medical", rows, {}).endswith("--field instruction=message?")
    assert _missing_field_message("medical", rows, {"instruction": "message"}).endswith(
        "--field output=reply?"
    )
    told = [{**row, "message": row["message"].replace("?", ".")} for row in rows]
    assert "did you mean" not in _missing_field_message("medical", told, {})  # no questions
