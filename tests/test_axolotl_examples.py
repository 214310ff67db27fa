"""Axolotl 0.21.0's own example configs (every text-only SFT and pre-training one, vendored
in tests/axolotl_examples/) validate as a user coming from Axolotl would run them: only
``base_model`` and the data paths changed.

The one thing we do differently on purpose: a key that Axolotl's schema does not know
either (a typo such as ``adam_eps`` in Axolotl's own examples, which Axolotl drops without
a word, or the top-level ``fsdp`` list that Axolotl 0.21 refuses) is reported, with a
did-you-mean. Every other problem would be ours, and fails the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from axolotl_configs import EXAMPLES, example_configs, swapped

from ft_plugin.config import load_recipe
from ft_plugin.config.axolotl import pinned_keys
from ft_plugin.errors import RecipeError

CONFIGS = example_configs()
_PROBLEM = re.compile(r"^[^:]+:\d+: (?P<key>[\w.]+): (?P<what>.*)$")
# Configs refused, every line of the refusal naming these keys: text configs whose point is
# a training method ft-plugin does not implement, and two that Axolotl 0.21.0 refuses too.
REFUSED_EXAMPLES = {
    "llama-2/relora.yml": ("relora", "jagged_restart"),
    "llama-2/lisa.yml": ("lisa_",),
    "eaft/eaft-example.yml": ("use_eaft", "eaft_"),
    "llama-3/sparse-finetuning.yaml": ("plugins", "llmcompressor"),
    "falcon-e/falcon-e-3b-ft.yaml": ("use_onebitllms",),
    "llama-2/loftq.yml": ("peft",),
    # Archived configs that Axolotl 0.21.0 refuses too: it has no `jeopardy` prompt
    # strategy any more, and raises on `max_packed_sequence_len`.
    "archived/jeopardy-bot/config.yml": ("datasets.0.type",),
    "archived/pythia-12b/config.yml": ("max_packed_sequence_len",),
}


def unknown_to_axolotl_too(line: str) -> bool:
    """A problem line about a key that is not in Axolotl's pinned schema either."""
    match = _PROBLEM.match(line)
    if not match or not match["what"].startswith("unknown key"):
        return False
    parts = match["key"].split(".")
    key = f"datasets.{parts[-1]}" if parts[0] in ("datasets", "test_datasets") else parts[0]
    return key not in pinned_keys()


def test_every_text_example_of_axolotl_is_here() -> None:
    assert len(CONFIGS) == 226 and (EXAMPLES / "LICENSE").is_file()
    assert all((EXAMPLES / name).is_file() for name in REFUSED_EXAMPLES)


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: str(p.relative_to(EXAMPLES)))
def test_axolotl_example_validates_with_only_model_and_data_changed(
    config: Path, tmp_path: Path
) -> None:
    method = REFUSED_EXAMPLES.get(str(config.relative_to(EXAMPLES)))
    try:
        load_recipe(str(swapped(config, tmp_path)))
    except RecipeError as exc:
        lines = [line for line in str(exc).splitlines() if not unknown_to_axolotl_too(line)]
        if method:  # refused, naming the method
            assert lines and all(any(k in line for k in method) for line in lines), lines
            return
        assert lines == [], "\n".join(lines)
    else:
        assert method is None, f"{config.name} should be refused for {method[0]}"


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("llama-3-vision-lora-11b.yaml", "processor_type: a vision or audio model"),
        ("nemotron-diffusion-lora-smoke.yaml", "diffusion_lm: a diffusion language model"),
    ],
)
def test_vision_and_diffusion_configs_are_refused_in_one_line(
    name: str, says: str, tmp_path: Path
) -> None:
    config = Path(__file__).parent / "axolotl_refused" / name
    with pytest.raises(RecipeError) as caught:
        load_recipe(str(swapped(config, tmp_path)))
    lines = str(caught.value).splitlines()
    assert len(lines) == 1 and says in lines[0], lines
