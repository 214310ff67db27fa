"""Axolotl's example configs as a user coming from Axolotl runs them: only ``base_model``
changed (to the embedded model, or a tiny local one) and each dataset path changed to a
local file of the declared shape, everything else as Axolotl's authors wrote it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

EXAMPLES = Path(__file__).parent / "axolotl_examples"
EMBEDDED = "embedded:smollm2-135m-instruct"
QUESTIONS = ["What helps a sore throat?", "How much water should I drink?",
             "Is a fever of 38 C dangerous?", "What does ibuprofen do?"]  # fmt: skip
ANSWERS = ["Warm fluids and rest.", "About two litres a day.",
           "Usually not; see a doctor if it lasts.", "It reduces pain and fever."]  # fmt: skip


def example_configs() -> list[Path]:
    """Every vendored example config, in a stable order."""
    return sorted(EXAMPLES.rglob("*.y*ml"))


def _chat_rows(entry: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    """Chat rows in the entry's own column and message key names."""
    mappings = dict(entry.get("message_property_mappings") or {})
    role_key = entry.get("message_field_role") or mappings.get("role") or "role"
    content_key = entry.get("message_field_content") or mappings.get("content") or "content"
    roles = entry.get("roles") or {}
    if role_key == "from" and not roles:  # ShareGPT's own role names
        roles = {"system": ["system"], "user": ["human"], "assistant": ["gpt"]}
    name = {r: (roles.get(r) or [r])[0] for r in ("system", "user", "assistant")}
    out = []
    for i in range(rows):
        turns = [("system", "You answer briefly."), ("user", QUESTIONS[i % 4]),
                 ("assistant", ANSWERS[i % 4])]  # fmt: skip
        messages = [{role_key: name[role], content_key: text} for role, text in turns]
        out.append({entry.get("field_messages") or "messages": messages})
    return out


def _preference_rows(entry: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    """Pairs (or KTO's judged answers) in the columns the entry's preference type reads."""
    kind = str(entry["type"])
    worse = "I cannot say."
    if kind.startswith("chat_template."):
        mappings = dict(entry.get("message_property_mappings") or {})
        role_key, content_key = mappings.get("role", "role"), mappings.get("content", "content")
        roles = entry.get("roles") or {}
        name = {r: (roles.get(r) or [r])[0] for r in ("system", "user", "assistant")}

        def turn(role: str, text: str) -> dict[str, str]:
            return {role_key: name[role], content_key: text}

        out = []
        for i in range(rows):
            prompt = [turn("system", "You answer briefly."), turn("user", QUESTIONS[i % 4])]
            chosen, rejected = turn("assistant", ANSWERS[i % 4]), turn("assistant", worse)
            if kind == "chat_template.default":
                out.append({entry.get("field_messages") or "messages": prompt,
                            entry.get("field_chosen") or "chosen": chosen,
                            entry.get("field_rejected") or "rejected": rejected})  # fmt: skip
            else:  # argilla forms: whole conversations
                out.append({"chosen": [*prompt, chosen], "rejected": [*prompt, rejected]})
        return out
    if entry.get("_kto"):
        return [{"instruction": QUESTIONS[i % 4], "question": QUESTIONS[i % 4],
                 "prompt": QUESTIONS[i % 4], "completion": ANSWERS[i % 4] if i % 2 else worse,
                 "label": bool(i % 2)} for i in range(rows)]  # fmt: skip
    return [{"question": QUESTIONS[i % 4], "prompt": QUESTIONS[i % 4], "system": "Be brief.",
             "instruction": QUESTIONS[i % 4], "input": QUESTIONS[i % 4],
             "chosen": ANSWERS[i % 4], "rejected": worse, "chosen_response": ANSWERS[i % 4],
             "rejected_response": worse} for i in range(rows)]  # fmt: skip


def _rows(entry: dict[str, Any], rows: int) -> list[dict[str, Any]]:
    if "." in str(entry.get("type") or "") and not str(entry["type"]).endswith((".yaml", ".yml")):
        return _preference_rows(entry, rows)
    kind = str(entry.get("type") or "alpaca").split(":")[0]
    if kind == "chat_template":
        return _chat_rows(entry, rows)
    if kind in ("completion", "pretrain"):
        column = entry.get("text_column") or entry.get("field") or "text"
        return [{column: f"{QUESTIONS[i % 4]} {ANSWERS[i % 4]}"} for i in range(rows)]
    if kind == "jeopardy":
        return [{"question": QUESTIONS[i % 4], "category": "health", "answer": ANSWERS[i % 4]}
                for i in range(rows)]  # fmt: skip
    return [{entry.get("field_instruction") or "instruction": QUESTIONS[i % 4],
             entry.get("field_input") or "input": "",
             entry.get("field_output") or "output": ANSWERS[i % 4]} for i in range(rows)]  # fmt: skip


def swapped(config: Path, folder: Path, base_model: str = EMBEDDED, rows: int = 40) -> Path:
    """A copy of ``config`` in ``folder`` with only the base model and the data paths changed."""
    data = yaml.safe_load(config.read_text(encoding="utf-8"))
    data["base_model"] = base_model
    folder.mkdir(parents=True, exist_ok=True)
    for group in ("datasets", "test_datasets", "pretraining_dataset"):
        for index, entry in enumerate(data.get(group) or []):
            if not isinstance(entry, dict):
                continue
            path = folder / f"{group}-{index}.jsonl"
            shape = {**entry, "_kto": data.get("rl") == "kto"}
            lines = [json.dumps(row, ensure_ascii=False) for row in _rows(shape, rows)]
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
            entry["path"] = str(path)
            for hub_only in ("data_files", "name", "revision"):  # they name files of a Hub repo
                entry.pop(hub_only, None)
    out = folder / config.name
    out.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out
