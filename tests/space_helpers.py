"""Shared helpers for the Space tests (tests/test_space*.py): a tiny served run, a free
port, small limits, and a GB18030 CSV of Chinese medical rows for the Train tab.

Kept out of the test_* modules so that importing a helper does not import (and, under
pytest, re-collect) another module's tests and fixtures."""

from __future__ import annotations

import random
import socket
from pathlib import Path
from types import SimpleNamespace

from helpers import tiny_recipe

PROMPT = "What are the warning signs of a stroke?"

WORDS = ["头痛", "发烧", "咳嗽", "胃痛", "失眠", "血压", "血糖", "心慌", "乏力", "腹泻", "便秘", "头晕",
         "胸闷", "气短", "关节", "皮疹"]  # fmt: skip
FIELDS = {"instruction": "问", "output": "答"}
QUICK = {"logging_steps": 1, "sequence_len": 768, "val_set_size": 4, "micro_batch_size": 2,
         "eval_steps": 3, "save_steps": 2}  # fmt: skip


def build_tiny_space_run(tmp: Path) -> Path:
    """A tiny LoRA run on the medical template, trained hard enough to change answers."""
    from ft_plugin.train import train

    loaded = tiny_recipe(
        tmp,
        "lora",
        **{
            "datasets.0.type": "medical",
            "datasets.0.path": "builtin:medical",
            "datasets.0.max_rows": 16,
            "sequence_len": 512,
            "learning_rate": 0.02,
            "max_steps": 4,
        },
    )
    return train(loaded, str(tmp / "run")).run_dir


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def small_limits() -> object:
    from ft_plugin.space import Limits

    return Limits(
        max_prompt_chars=300,
        max_new_tokens=24,
        default_new_tokens=8,
        max_time_s=20.0,
        max_eval_rows=4,
        eval_max_new_tokens=8,
    )


def serve(state: object) -> SimpleNamespace:
    """Launch the app of ``state`` on a free port; returns demo, url and a client."""
    from gradio_client import Client

    from ft_plugin.space import build_blocks, launch_kwargs

    demo = build_blocks(state)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        **launch_kwargs(state.limits, state.access),
    )
    return SimpleNamespace(demo=demo, url=url, client=Client(url, verbose=False), state=state)


def write_gb18030_csv(path: Path, rows: int = 40) -> Path:
    """Chinese medical rows with their own column names, GB18030 as such files come."""
    rng = random.Random(0)
    lines = ["科室,问,答"]
    for _ in range(rows):
        ask = "".join(rng.sample(WORDS, 5)) + "怎么办？"
        lines.append(f"内科,{ask},{''.join(rng.sample(WORDS, 8))}，请就医。")
    path.write_bytes(("\n".join(lines) + "\n").encode("gb18030"))
    return path
