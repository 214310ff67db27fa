"""Axolotl's last training keys do what they say (issue 30): batch_size, the cosine
minimum / constant phase and quadratic warm-up, optim_args and optim_target_modules,
accelerator_config, curriculum_sampling and group_by_length, use_dft, eval_batch_size.

Each test shows a key changing what it should: the built SFTConfig / TrainingArguments
field, the learning rate the real scheduler gives at given steps, the sampler the Trainer
builds, the optimizer's settings, or the loss of a real run, on the tiny random Llama
(tests/tiny.py) on a CPU. Expected learning rates are worked out by hand from Axolotl
0.21.0's formulas (src/axolotl/utils/schedulers.py), not from our code.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from accelerate.utils import GradientAccumulationPlugin
from helpers import problems, recipe_of, tiny_recipe
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import RandomSampler, SequentialSampler
from transformers.trainer_pt_utils import AcceleratorConfig, LengthGroupedSampler
from trl import SFTConfig

from ft_plugin.config import Recipe, load_recipe
from ft_plugin.config.schema.distributed import ACCELERATOR_CONFIG_KEYS, GRADIENT_ACCUMULATION_KEYS
from ft_plugin.config.schema.extensions import STAGE_KEYS
from ft_plugin.engine import prepare_run
from ft_plugin.engine.run_notes import run_notes
from ft_plugin.engine.sft_config import Precision, build_sft_config
from ft_plugin.train import train

FP32 = Precision(False, False, torch.float32)
EVAL = "val_set_size: 6\n"  # 26 rows: 20 to train on, 6 held out
LR = 1e-2  # tiny_recipe's learning_rate


def sft_for(recipe: Recipe, tmp_path: Path, has_eval: bool = False) -> SFTConfig:
    return build_sft_config(recipe, tmp_path / "run", precision=FP32,
                            gradient_checkpointing=False, has_eval=has_eval)  # fmt: skip


def trainer_for(tmp_path: Path, name: str, extra: str = "", **keys: object) -> Any:
    return prepare_run(tiny_recipe(tmp_path, "lora", extra=extra, **keys),
                       str(tmp_path / name)).trainer  # fmt: skip


def learning_rates(trainer: Any, total: int) -> list[float]:
    """The learning rate of each step 0..total from the scheduler the trainer builds."""
    trainer.create_optimizer_and_scheduler(num_training_steps=total)
    rates = []
    for _ in range(total + 1):
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
        trainer.optimizer.step()  # no gradients: a no-op, but the order torch expects
        trainer.lr_scheduler.step()
    return rates


# --------------------------------------------------------------------- batch_size


def test_batch_size_sets_gradient_accumulation_as_axolotl_computes_it(tmp_path: Path) -> None:
    args = sft_for(recipe_of(batch_size=8, micro_batch_size=2), tmp_path)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 4)
    # normalize_config floors (10 // 4) and does not divide by the number of processes
    assert recipe_of(batch_size=10, micro_batch_size=4).gradient_accumulation_steps == 2
    assert recipe_of(batch_size=8, micro_batch_size=2, gradient_accumulation_steps=4)
    loaded = tiny_recipe(tmp_path, "lora", batch_size=6)  # micro_batch_size: 2
    assert prepare_run(loaded, str(tmp_path / "run")).trainer.args.gradient_accumulation_steps == 3
    again = tmp_path / "resolved.yaml"  # the run directory's recipe.yaml loads back the same
    again.write_text(loaded.to_yaml(), encoding="utf-8")
    assert load_recipe(str(again)).recipe.gradient_accumulation_steps == 3


def test_batch_size_contradicting_gradient_accumulation_is_one_line(tmp_path: Path) -> None:
    [line] = problems(tmp_path, extra="batch_size: 8\n", gradient_accumulation_steps=3)
    assert line.endswith("batch_size: asks for gradient_accumulation_steps 4 (8 // "
                         "micro_batch_size 2), not 3: keep one"), line  # fmt: skip
    assert "lora.yaml:" in line, "names the file and line"
    [line] = problems(tmp_path, extra="batch_size: 1\n")
    assert line.endswith("batch_size: 1 is below micro_batch_size 2; write a multiple of it")


# --------------------------------------------------------------------- schedules


def test_cosine_min_lr_ratio_is_transformers_cosine_with_min_lr(tmp_path: Path) -> None:
    args = sft_for(recipe_of(cosine_min_lr_ratio=0.1), tmp_path)
    assert args.lr_scheduler_type == "cosine_with_min_lr"
    assert args.lr_scheduler_kwargs == {"min_lr_rate": 0.1}
    assert sft_for(recipe_of(), tmp_path).lr_scheduler_type == "cosine"
    trainer = trainer_for(tmp_path, "run", warmup_steps=2, cosine_min_lr_ratio=0.1)
    rates = learning_rates(trainer, 10)
    # linear warm-up over 2 steps, then 0.1 + 0.9 × ½(1 + cos(π (s − 2) / 8)) of the peak
    expected = {0: 0.0, 1: LR / 2, 2: LR, 6: LR * (0.1 + 0.9 * 0.5), 10: LR * 0.1}
    for step, rate in expected.items():
        assert rates[step] == pytest.approx(rate, abs=1e-9), step
    assert min(rates[2:]) == pytest.approx(LR * 0.1)  # never below the minimum


def test_cosine_constant_lr_ratio_holds_the_minimum_for_the_rest_of_the_run(
    tmp_path: Path,
) -> None:
    trainer = trainer_for(tmp_path, "run", warmup_steps=2, cosine_min_lr_ratio=0.1,
                          cosine_constant_lr_ratio=0.5)  # fmt: skip
    assert trainer.args.lr_scheduler_type == "cosine"  # Axolotl's own curve, not a name
    rates = learning_rates(trainer, 10)
    assert isinstance(trainer.lr_scheduler, LambdaLR)
    # cosine from step 2 to step 5 (= 0.5 × 10), then constant at 0.1 of the peak
    assert rates[2] == pytest.approx(LR)
    assert rates[3] == pytest.approx(LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 3))))
    assert rates[4] == pytest.approx(LR * (0.1 + 0.9 * 0.5 * (1 + math.cos(2 * math.pi / 3))))
    assert rates[5:] == pytest.approx([LR * 0.1] * 6)
    # Axolotl's own examples: ratio 1.0 and constant 0 is a constant learning rate
    flat = trainer_for(tmp_path, "flat", cosine_min_lr_ratio=1.0, cosine_constant_lr_ratio=0)
    assert learning_rates(flat, 6) == pytest.approx([LR] * 7)


def test_lr_quadratic_warmup_warms_up_quadratically_then_decays_to_zero(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, "run", warmup_steps=4, lr_quadratic_warmup="true",
                          cosine_min_lr_ratio=0.5)  # fmt: skip
    rates = learning_rates(trainer, 10)
    assert rates[:5] == pytest.approx([0.0, LR / 16, LR / 4, LR * 9 / 16, LR])  # (s / 4)²
    assert rates[7] == pytest.approx(LR / 2) and rates[10] == pytest.approx(0.0)  # no minimum
    notes = run_notes(recipe_of(lr_quadratic_warmup=True, cosine_min_lr_ratio=0.5), False)
    assert "cosine_min_lr_ratio: no effect with lr_quadratic_warmup: the cosine decays to " \
           "zero (Axolotl's schedule)" in notes  # fmt: skip


@pytest.mark.slow
def test_a_real_run_logs_the_learning_rates_of_axolotls_curve(tmp_path: Path) -> None:
    """Trained, checkpointed (the LambdaLR state is saved) and logged by transformers."""
    loaded = tiny_recipe(tmp_path, "lora", max_steps=6, cosine_min_lr_ratio=0.2,
                         cosine_constant_lr_ratio=0.5, save_steps=3)  # fmt: skip
    result = train(loaded, str(tmp_path / "run"))
    history = result.run_dir / "trainer_state.json"
    logged = [h["learning_rate"] for h in json.loads(history.read_text())["log_history"]
              if "learning_rate" in h]  # fmt: skip
    # step k logs the rate it trained with, that of scheduler step k - 1: cosine over
    # steps 0..3 (= 0.5 × 6), then constant at 0.2 of the peak
    cosine = [LR * (0.2 + 0.8 * 0.5 * (1 + math.cos(math.pi * s / 3))) for s in (0, 1, 2)]
    assert logged == pytest.approx([*cosine, LR * 0.2, LR * 0.2, LR * 0.2])
    assert cosine == pytest.approx([LR, 0.8 * LR, 0.4 * LR])


def test_schedule_keys_that_do_nothing_here_say_so() -> None:
    linear = run_notes(recipe_of(lr_scheduler="linear", cosine_min_lr_ratio=0.1), False)
    assert "cosine_min_lr_ratio: no effect here: it shapes lr_scheduler: cosine (this run: " \
           "linear)" in linear  # fmt: skip
    alone = run_notes(recipe_of(cosine_constant_lr_ratio=0.8), False)
    assert any(n.startswith("cosine_constant_lr_ratio: no effect without") for n in alone)
    assert not any("cosine" in n for n in run_notes(recipe_of(cosine_min_lr_ratio=0.1), False))
    named = recipe_of(lr_scheduler="cosine_with_min_lr", cosine_min_lr_ratio=0.3)
    assert build_sft_config(named, Path("/tmp/unused-run"), precision=FP32,
                            gradient_checkpointing=False,
                            has_eval=False).lr_scheduler_kwargs == {"min_lr_rate": 0.3}  # fmt: skip
    assert recipe_of(lr_scheduler="cosine_with_min_lr").contradictions() == [
        (("lr_scheduler",), "cosine_with_min_lr needs cosine_min_lr_ratio (e.g. 0.1), or write cosine")
    ]  # fmt: skip
    with pytest.raises(ValueError, match="less than or equal to 1"):
        recipe_of(cosine_min_lr_ratio=1.5)


# --------------------------------------------------------------------- optimizer arguments


def test_optim_args_reach_the_optimizer_as_text_or_a_mapping(tmp_path: Path) -> None:
    text = trainer_for(
        tmp_path, "text", optimizer="sgd", optim_args="'momentum=0.9, nesterov=true'"
    )
    assert text.args.optim_args == "momentum=0.9,nesterov=true"
    group = text.create_optimizer().param_groups[0]
    assert isinstance(text.optimizer, torch.optim.SGD)
    assert (group["momentum"], group["nesterov"]) == (0.9, True)
    mapping = trainer_for(
        tmp_path, "mapping", extra="optimizer: sgd\noptim_args:\n  momentum: 0.5\n"
    )
    assert mapping.args.optim_args == "momentum=0.5"
    assert mapping.create_optimizer().param_groups[0]["momentum"] == 0.5
    plain = trainer_for(tmp_path, "plain", optimizer="sgd")
    assert plain.create_optimizer().param_groups[0]["momentum"] == 0
    notes = run_notes(recipe_of(optim_args="betas=0.1"), False)
    assert any(
        n.startswith("optim_args: no effect here: adamw_torch takes no optim_args") for n in notes
    )


def test_bad_optim_args_are_one_line_each(tmp_path: Path) -> None:
    [line] = problems(tmp_path, optim_args="momentum")
    assert line.endswith("optim_args: 'momentum' is not key=value; write e.g. momentum=0.9,"
                         "nesterov=true or a mapping {momentum: 0.9}"), line  # fmt: skip
    [line] = problems(tmp_path, extra="optim_args:\n  betas: [0.9, 0.99]\n")
    assert "optim_args: betas: write one value" in line


def test_optim_target_modules_reach_a_galore_optimizer_or_its_fallback(tmp_path: Path) -> None:
    args = sft_for(recipe_of(optimizer="galore_adamw", optim_target_modules=["q_proj", "v_proj"],
                             optim_args="rank=4,update_proj_gap=2"), tmp_path)  # fmt: skip
    assert args.optim_target_modules == ["q_proj", "v_proj"]
    assert args.optim_args == "rank=4,update_proj_gap=2"
    notes = run_notes(recipe_of(optimizer="galore_adamw", optim_target_modules="all_linear"), False)
    if importlib.util.find_spec("galore_torch") is None:
        assert args.optim == "adamw_torch"
        assert any("galore_adamw needs galore-torch, not installed" in n for n in notes)
    else:
        assert args.optim == "galore_adamw" and not notes
    [line] = problems(tmp_path, optimizer="galore_adamw")
    assert line.endswith("optimizer: galore_adamw needs optim_target_modules: the modules to "
                         "project, e.g. [q_proj, v_proj] or all_linear"), line  # fmt: skip
    unused = run_notes(recipe_of(optim_target_modules=["q_proj"]), False)
    assert any(n.startswith("optim_target_modules: no effect here") for n in unused)


# --------------------------------------------------------------------- accelerator_config


def test_accelerator_config_keys_are_transformers_and_accelerates() -> None:
    assert set(ACCELERATOR_CONFIG_KEYS) == {f.name for f in dataclasses.fields(AcceleratorConfig)}
    assert set(GRADIENT_ACCUMULATION_KEYS) == {
        f.name for f in dataclasses.fields(GradientAccumulationPlugin)
    }


def test_accelerator_config_reaches_the_trainers_accelerator(tmp_path: Path) -> None:
    extra = ("accelerator_config:\n  even_batches: false\n  gradient_accumulation_kwargs:\n"
             "    sync_each_batch: true\n")  # fmt: skip
    trainer = trainer_for(tmp_path, "run", extra=extra)
    assert trainer.args.accelerator_config.even_batches is False
    assert trainer.accelerator.even_batches is False
    assert trainer.accelerator.gradient_state.plugin_kwargs["sync_each_batch"] is True
    assert trainer_for(tmp_path, "plain").accelerator.even_batches is True


def test_bad_accelerator_config_is_one_line_with_what_to_write(tmp_path: Path) -> None:
    [line] = problems(tmp_path, extra="accelerator_config:\n  evenbatches: false\n")
    assert "accelerator_config: unknown key 'evenbatches' (did you mean 'even_batches'?)" in line
    [line] = problems(tmp_path, extra="accelerator_config:\n  gradient_accumulation_kwargs:\n"
                                      "    num_steps: 4\n")  # fmt: skip
    assert line.endswith("accelerator_config: gradient_accumulation_kwargs.num_steps: write "
                         "gradient_accumulation_steps: instead"), line  # fmt: skip


# --------------------------------------------------------------------- sampling


def test_curriculum_sampling_trains_on_the_rows_in_file_order(tmp_path: Path) -> None:
    curriculum = trainer_for(tmp_path, "curriculum", curriculum_sampling="true")
    assert curriculum.args.train_sampling_strategy == "sequential"
    assert isinstance(curriculum._get_train_sampler(), SequentialSampler)
    in_file_order = trainer_for(tmp_path, "ordered", shuffle_merged_datasets="false")
    shuffled = trainer_for(tmp_path, "shuffled")
    rows = curriculum.train_dataset["input_ids"]
    assert rows == in_file_order.train_dataset["input_ids"] != shuffled.train_dataset["input_ids"]
    batches = [b["input_ids"] for b in curriculum.get_train_dataloader()]
    first = [ids[ids != curriculum.processing_class.pad_token_id].tolist() for ids in batches[0]]
    assert first == rows[:2]  # drawn in order, not at random
    assert isinstance(shuffled._get_train_sampler(), RandomSampler)


def test_curriculum_sampling_over_several_shuffled_datasets_says_so() -> None:
    two = [{"path": "a.jsonl"}, {"path": "b.jsonl"}]
    notes = run_notes(Recipe.model_validate({"datasets": two, "curriculum_sampling": True}), False)
    assert any(
        n.startswith("curriculum_sampling: the 2 datasets are shuffled together") for n in notes
    )
    kept = Recipe.model_validate({"datasets": two, "curriculum_sampling": True,
                                  "shuffle_merged_datasets": False})  # fmt: skip
    assert not any(n.startswith("curriculum_sampling") for n in run_notes(kept, False))


def test_group_by_length_builds_a_length_grouped_sampler(tmp_path: Path) -> None:
    trainer = trainer_for(tmp_path, "run", group_by_length="true")
    assert trainer.args.train_sampling_strategy == "group_by_length"
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    packed = sft_for(recipe_of(group_by_length=True, sample_packing=True), tmp_path)
    assert packed.train_sampling_strategy == "random"
    assert "group_by_length: no effect here: packed batches carry no padding" in run_notes(
        recipe_of(group_by_length=True, sample_packing=True), False
    )
    both = sft_for(recipe_of(group_by_length=True, curriculum_sampling=True), tmp_path)
    assert both.train_sampling_strategy == "sequential"  # Axolotl checks curriculum first


# --------------------------------------------------------------------- loss, eval batch


@pytest.mark.slow
def test_use_dft_trains_with_trls_dft_loss(tmp_path: Path) -> None:
    assert sft_for(recipe_of(use_dft=True), tmp_path).loss_type == "dft"
    assert sft_for(recipe_of(), tmp_path).loss_type == "nll"

    def first_losses(name: str, **keys: object) -> tuple[list[float], dict[str, Any]]:
        loaded = tiny_recipe(tmp_path, "lora", extra=EVAL, max_steps=2, **keys)
        result = train(loaded, str(tmp_path / name))
        state = json.loads((result.run_dir / "trainer_state.json").read_text())
        return [h["loss"] for h in state["log_history"] if "loss" in h], result.metrics

    nll, nll_metrics = first_losses("nll")
    dft, dft_metrics = first_losses("dft", use_dft="true")
    assert len(nll) == len(dft) == 2
    # same rows, same start: DFT weights each token's -log p by its probability p < 1
    assert 0 < dft[0] < nll[0]
    assert nll_metrics["eval_perplexity"] > 1 and dft_metrics["eval_perplexity"] is None
    assert dft_metrics["eval_loss"] is not None


def test_eval_batch_size_is_the_evaluation_batch(tmp_path: Path) -> None:
    assert sft_for(recipe_of(eval_batch_size=5), tmp_path).per_device_eval_batch_size == 5
    assert sft_for(recipe_of(micro_batch_size=3), tmp_path).per_device_eval_batch_size == 3
    trainer = trainer_for(tmp_path, "run", extra=EVAL, eval_batch_size=3)
    assert next(iter(trainer.get_eval_dataloader()))["input_ids"].shape[0] == 3


# --------------------------------------------------------------------- stages


def test_a_stage_may_set_warmup_ratio_and_per_epoch_counts(tmp_path: Path) -> None:
    assert {"warmup_ratio", "evals_per_epoch", "saves_per_epoch"} <= set(STAGE_KEYS)
    extra = (EVAL + "stages:\n  - name: first\n    warmup_ratio: 0.1\n    evals_per_epoch: 2\n"
             "    saves_per_epoch: 1\n")  # fmt: skip
    recipe = tiny_recipe(tmp_path, "lora", extra=extra).recipe.for_stage(0)
    assert (recipe.warmup_ratio, recipe.evals_per_epoch, recipe.saves_per_epoch) == (0.1, 2, 1)
