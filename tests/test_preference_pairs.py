"""`ft-plugin data preferences`: the Space's blind ratings, filled rating sheets and a
model's own answers become pairs that `rl: dpo` trains on."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import cli
from tiny import save_tiny_model

from ft_plugin import engine
from ft_plugin.config import load_recipe
from ft_plugin.config.schema import DatasetSection
from ft_plugin.evaluate.human import write_human_sheet
from ft_plugin.evaluate.preference_pairs import (
    ModelAnswers,
    pairs_from_model,
    pairs_from_ratings,
    pairs_from_sheets,
)
from ft_plugin.space.ratings import new_record


def rating(prompt: str, tuned: str, base: str, tuned_slot: str, preferred: str) -> dict:
    """A line as the Space writes it: the answers shown blind in ``tuned_slot`` order, and
    the slot the rater picked for ``preferred`` (tuned, base or tie)."""
    slots = {tuned_slot: tuned, ("b" if tuned_slot == "a" else "a"): base}
    picked = {"tuned": tuned_slot, "base": "b" if tuned_slot == "a" else "a"}.get(preferred, "tie")
    return new_record(adapter="medical-lora", prompt=prompt,
                      answers={"answer_a": slots["a"], "answer_b": slots["b"]},
                      scores={}, preference=picked, tuned=tuned_slot, source="ui")  # fmt: skip


def write_ratings(folder: Path, records: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "ratings.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    return folder


RATINGS = [
    rating("Fever of 39C?", "See a doctor today.", "It is fine.", "a", "tuned"),
    rating("Fever of 39C?", "See a doctor today.", "It is fine.", "b", "tuned"),  # same, merged
    rating("Sore throat?", "Warm fluids.", "Ice cream!", "b", "base"),  # base preferred
    rating("Headache?", "Rest.", "Sleep.", "a", "tie"),  # no preference
    rating("Cough?", "Honey helps.", "Nothing helps.", "a", "tuned"),  # rated both ways:
    rating("Cough?", "Honey helps.", "Nothing helps.", "b", "base"),  # a contradiction
]


def test_ratings_become_pairs_with_the_blind_order_undone(tmp_path: Path) -> None:
    pairs = pairs_from_ratings(write_ratings(tmp_path / "space", RATINGS))
    assert pairs.rows_in == 6
    assert dict(pairs.dropped) == {"tie": 1, "duplicate": 1, "contradicted": 2}
    by_prompt = {p["messages"][0]["content"]: p for p in pairs.pairs}
    fever, throat = by_prompt["Fever of 39C?"], by_prompt["Sore throat?"]
    assert (fever["chosen"]["content"], fever["rejected"]["content"]) == (
        "See a doctor today.", "It is fine.")  # fmt: skip
    assert (fever["chosen_model"], fever["rejected_model"]) == ("tuned", "base")
    assert (throat["chosen"]["content"], throat["chosen_model"]) == ("Ice cream!", "base")


def test_ratings_of_another_adapter_are_left_out(tmp_path: Path) -> None:
    folder = write_ratings(tmp_path / "space", RATINGS)
    assert pairs_from_ratings(folder, adapter="legal-lora").rows_in == 0


def fill(sheet: Path, scores: dict[str, tuple[list[int], list[int]]]) -> None:
    """Fill the sheet's score cells: ``{prompt: (scores of a, scores of b)}``."""
    with sheet.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        a, b = scores[row["prompt"]]
        for criterion, x, y in zip(("relevance", "accuracy", "readability"), a, b, strict=True):
            row[f"{criterion}_a"], row[f"{criterion}_b"] = str(x), str(y)
    with sheet.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_a_filled_sheet_chooses_the_higher_total(tmp_path: Path) -> None:
    items = [{"prompt": "2+2?", "base_answer": "5", "tuned_answer": "4"},
             {"prompt": "3+3?", "base_answer": "6", "tuned_answer": "six"}]  # fmt: skip
    sheet = write_human_sheet(items, tmp_path / "ratings.csv", seed=3)
    with sheet.open(encoding="utf-8") as f:
        order = {r["prompt"]: r for r in csv.DictReader(f)}
    # 2+2: whichever slot shows "4" gets 5s; 3+3: equal totals (no preference)
    four_is_a = order["2+2?"]["answer_a"] == "4"
    fill(sheet, {"2+2?": ([5, 5, 5], [2, 1, 3]) if four_is_a else ([2, 1, 3], [5, 5, 5]),
                 "3+3?": ([4, 4, 4], [5, 3, 4])})  # fmt: skip
    pairs = pairs_from_sheets([sheet])
    assert pairs.rows_in == 2 and dict(pairs.dropped) == {"tie": 1}
    (pair,) = pairs.pairs
    assert (pair["chosen"]["content"], pair["rejected"]["content"]) == ("4", "5")
    assert pair["chosen_model"] == "tuned"


def test_a_model_answers_sft_rows_and_its_answers_are_rejected(tmp_path: Path) -> None:
    model = save_tiny_model(tmp_path / "m")
    rows = DatasetSection(path="builtin:medical", type="medical")
    pairs = pairs_from_model(rows, ModelAnswers(str(model), max_samples=3, max_new_tokens=6))
    assert pairs.rows_in == 3 and len(pairs.pairs) + sum(pairs.dropped.values()) == 3
    for pair in pairs.pairs:  # the medical template's system prompt travels with the pair
        assert (
            pair["messages"][0]["role"] == "system" and "medical" in pair["messages"][0]["content"]
        )
        assert pair["chosen_model"] == "reference" and pair["rejected_model"] == str(model)
        assert pair["chosen"]["content"] != pair["rejected"]["content"]


def test_the_command_writes_pairs_that_dpo_trains_on(tmp_path: Path) -> None:
    folder = write_ratings(tmp_path / "space", RATINGS * 3)
    out = tmp_path / "pairs.jsonl"
    done = cli("data", "preferences", "--from", str(folder), "--output", str(out))
    assert done.returncode == 0, done.stderr
    assert "18 rows in, 2 pairs out (dropped: tie 3, duplicate 7, contradicted 6)" in done.stdout
    report = json.loads(out.with_suffix(".report.json").read_text())
    assert report["pairs_out"] == 2 and report["rows_in"] == 18
    model = save_tiny_model(tmp_path / "m")
    recipe = tmp_path / "dpo.yaml"
    recipe.write_text(f"""base_model: {model}
adapter: lora
rl: dpo
datasets:
  - path: {out}
    type: chat_template.default
sequence_len: 128
micro_batch_size: 1
max_steps: 2
report_to: none
bf16: false
""")
    result = engine.run(engine.prepare_run(load_recipe(str(recipe)), str(tmp_path / "run")))
    assert result.metrics["train_rows"] == 2 and "rewards" in result.metrics


def test_bad_ratings_are_one_line_and_nothing_is_written(tmp_path: Path) -> None:
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / "ratings.jsonl").write_text(json.dumps(RATINGS[0]) + "\n{oops\n")
    out = tmp_path / "pairs.jsonl"
    done = cli("data", "preferences", "--from", str(folder), "--output", str(out))
    assert done.returncode == 2 and not out.exists()
    assert done.stderr.strip().splitlines()[-1].endswith("ratings.jsonl:2: not a JSON line "
                                                         "(Expecting property name enclosed in double quotes)")  # fmt: skip
    only_ties = write_ratings(tmp_path / "ties", [RATINGS[3]])
    done = cli("data", "preferences", "--from", str(only_ties), "--output", str(out))
    assert done.returncode == 2 and "no pairs ({'tie': 1}); nothing written" in done.stderr
    assert not out.exists()


def test_the_rate_tab_counts_the_usable_pairs() -> None:
    from ft_plugin.space.ratings import summarize, summary_markdown

    text = summary_markdown(summarize(RATINGS))
    assert text.splitlines()[-1] == (
        "Preference pairs for DPO: 2 usable (1 tie, 1 duplicate, 2 contradicted left out)"
    )


def test_a_sheet_saved_as_xlsx_gives_the_same_pairs_as_its_csv(tmp_path: Path) -> None:
    from openpyxl import Workbook

    items = [{"prompt": "2+2?", "base_answer": "5", "tuned_answer": "4"}]
    sheet = write_human_sheet(items, tmp_path / "ratings.csv", seed=3)
    four_is_a = next(csv.DictReader(sheet.open(encoding="utf-8")))["answer_a"] == "4"
    fill(sheet, {"2+2?": ([5, 5, 5], [2, 1, 3]) if four_is_a else ([2, 1, 3], [5, 5, 5])})
    book = Workbook()  # as a rater saves it from a spreadsheet: scores typed as numbers
    for row in csv.reader(sheet.open(encoding="utf-8")):
        book.active.append([int(c) if c.isdigit() else c for c in row])
    book.save(tmp_path / "ratings_ann.xlsx")
    (tmp_path / "ratings.key.csv").rename(tmp_path / "ratings_ann.key.csv")
    from_xlsx = pairs_from_sheets([tmp_path / "ratings_ann.xlsx"])
    assert [(p["chosen"]["content"], p["rejected"]["content"]) for p in from_xlsx.pairs] == [
        ("4", "5")
    ]
    done = cli("data", "preferences", "--from", str(tmp_path / "ratings_ann.xlsx"),
               "--output", str(tmp_path / "p.jsonl"))  # fmt: skip
    assert done.returncode == 0, done.stderr


def test_an_ods_or_xls_sheet_is_refused_with_what_to_do(tmp_path: Path) -> None:
    sheet = tmp_path / "ratings_ann.ods"
    sheet.write_bytes(b"PK\x03\x04")
    done = cli("data", "preferences", "--from", str(sheet), "--output", str(tmp_path / "p.jsonl"))
    assert (
        done.returncode == 2
        and "save it from the spreadsheet as .xlsx or CSV (UTF-8)" in done.stderr
    )
