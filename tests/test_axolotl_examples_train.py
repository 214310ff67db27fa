"""Three of Axolotl 0.21.0's own example configs train a few steps on a tiny local model,
with only ``base_model`` and the data paths changed (and ``max_steps`` cut to a few): an
``alpaca`` LoRA with sample packing, a ``chat_template`` QLoRA on ShareGPT rows
(``from`` / ``value``), and a full fine-tune that streams its data."""

from __future__ import annotations

from pathlib import Path

import pytest
from axolotl_configs import EXAMPLES, swapped
from tiny import save_tiny_model

from ft_plugin.config import load_recipe
from ft_plugin.rundir import RunDir
from ft_plugin.train import train

pytestmark = [pytest.mark.slow]  # trains Axolotl's example configs as written: tens of seconds each
STEPS = 3


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("axolotl-train") / "tiny")


@pytest.mark.parametrize(
    ("example", "adapter", "packing"),
    [
        ("llama-3/lora-1b.yml", "lora", "rows"),
        ("falcon-h1/falcon-h1-500m-qlora.yaml", "qlora", "none"),
        ("streaming/sft.yaml", "full", "rows"),
    ],
)
def test_an_axolotl_example_trains_as_written(
    example: str, adapter: str, packing: str, tiny: Path, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # its relative output_dir and dataset_prepared_path land here
    config = swapped(EXAMPLES / example, tmp_path / "config", base_model=str(tiny))
    loaded = load_recipe(str(config), {"max_steps": STEPS})
    assert loaded.recipe.adapter == adapter
    result = train(loaded, str(tmp_path / "run"))
    metrics = RunDir(result.run_dir).metrics()
    assert metrics["steps"] == STEPS and metrics["train_loss"] > 0
    assert metrics["packing"].startswith(packing), metrics["packing"]
    err = capfd.readouterr().err
    assert "Traceback" not in err
