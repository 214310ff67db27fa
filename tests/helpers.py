"""Recipes and data for training tests on a tiny random Llama."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from tiny import save_tiny_model

from ft_plugin.config import LoadedRecipe, Recipe, load_recipe, parse_set_options
from ft_plugin.data.preview import render_example
from ft_plugin.errors import RecipeErrors

# CI (.ci/run) sets CI=true: there a dependency `make setup` installs must be importable.
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(module: str, reason: str) -> ModuleType:
    """Import ``module``, one that `make setup` installs (``reason`` says from where, e.g.
    "the qlora extra"). Missing, the calling test (or module, at module level) is skipped
    with that reason, except under CI=true, where it fails: CI installs everything, so a
    missing package there is a broken setup, not a test to pass over."""
    try:
        return importlib.import_module(module)
    except ImportError as error:
        message = f"{module} is not importable ({error}); {reason}"
        if IN_CI:
            pytest.fail(f"CI=true: {message}; `make setup` must install it", pytrace=False)
        pytest.skip(message, allow_module_level=True)


ROWS = [
    {"instruction": f"What is {a} plus {b}?", "input": "", "output": f"{a} plus {b} is {a + b}."}
    for a in range(6)
    for b in range(4)
] + [
    {
        "instruction": "发烧怎么办？",
        "input": "成人，体温38.5度",
        "output": "多喝水，注意休息，持续发烧请就医。",
    },
    {
        "instruction": "Explain a cap on liability.",
        "input": "",
        "output": "It limits how much one party pays.",
    },
]


def write_rows(path: Path, rows: list[dict] | None = None) -> Path:
    path.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in (rows or ROWS)), encoding="utf-8"
    )
    return path


def tiny_recipe(
    tmp_path: Path, adapter: str = "lora", extra: str = "", **overrides: object
) -> LoadedRecipe:
    """A recipe file for a tiny model and tiny data under tmp_path, loaded and validated."""
    model_dir = tmp_path / "tiny-model"
    if not model_dir.exists():
        save_tiny_model(model_dir)
    data = write_rows(tmp_path / "rows.jsonl")
    text = f"""
base_model: {model_dir}
adapter: {adapter}
datasets:
  - path: {data}
    type: alpaca
sequence_len: 96
micro_batch_size: 2
max_steps: 3
learning_rate: 1.0e-2
warmup_steps: 0
logging_steps: 1
report_to: none
bf16: false
lora_r: 4
lora_alpha: 8
adapter_layers: 1
adapter_len: 4
bottleneck_size: 8
freeze:
  top_layers: 1
{extra}"""
    path = tmp_path / f"{adapter}.yaml"
    path.write_text(text, encoding="utf-8")
    # keys as --set writes them: a value is its text parsed as YAML ("true", paths, lists)
    return load_recipe(str(path), parse_set_options(f"{k}={v}" for k, v in overrides.items()))


def recipe_of(**keys: object) -> Recipe:
    """A validated recipe (no files read) with these keys on one local dataset."""
    return Recipe.model_validate({"datasets": [{"path": "rows.jsonl"}], **keys})


def problems(tmp_path: Path, extra: str = "", **keys: object) -> list[str]:
    """Every one-line problem `load_recipe` reports for a tiny recipe with these keys."""
    with pytest.raises(RecipeErrors) as caught:
        tiny_recipe(tmp_path, "lora", extra=extra, **keys)
    return [str(error) for error in caught.value.errors]


def full_pass_label_score(model, tokenizer, prompt, label) -> float:  # noqa: ANN001
    """Independent reference: one full forward pass over prompt + label."""
    rendered = render_example(
        tokenizer, {"prompt": prompt, "completion": [{"role": "assistant", "content": label}]}, 4096
    )
    ids = torch.tensor([rendered.input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1], -1)
    return sum(
        float(logp[i - 1, t]) for i, t in enumerate(rendered.input_ids) if rendered.loss_mask[i]
    )


def cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m ft_plugin ARGS`` in a subprocess, as a user types it (output captured)."""
    return subprocess.run([sys.executable, "-m", "ft_plugin", *args], capture_output=True, cwd=cwd,
                          text=True, timeout=timeout, env={**os.environ, **(env or {})})  # fmt: skip


def assert_packed_rows_match_rows_alone(model: Any, rows: list[Any], inputs: dict) -> None:
    """Packed ``inputs`` (the ``rows`` side by side) give each row the logits and gradients
    it has alone: the packed attention keeps rows apart. ``model`` attends packed."""
    import torch

    packed = model(**inputs, use_cache=False).logits[0]
    (packed**2).mean().backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model.set_attn_implementation("sdpa")
    alone = torch.cat([model(input_ids=r[None], use_cache=False).logits[0] for r in rows])
    (alone**2).mean().backward()
    torch.testing.assert_close(packed, alone, atol=1e-5, rtol=1e-5)
    for mine, reference in zip(packed_grads, (p.grad for p in model.parameters()), strict=True):
        torch.testing.assert_close(mine, reference, atol=1e-6, rtol=1e-4)
