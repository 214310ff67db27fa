"""Axolotl's training keys do what they say: schedule, checkpoints, optimizer, precision,
packing, the loss watchdog, W&B, and what several processes get (issue 30).

Each test shows a key changing what it should: the built SFTConfig / TrainingArguments
field, the batches, the optimizer, the trainer's log history, the run directory, or W&B's
offline run folder, on the tiny random Llama (tests/tiny.py) on a CPU.
"""

from __future__ import annotations

import json
import os
import re
import struct
from pathlib import Path

import pytest
import torch
import yaml
from helpers import problems, recipe_of, require, tiny_recipe
from hub_server import HubServer, hub_fixture
from safetensors.torch import load_file
from transformers.training_args import OptimizerNames
from trl import SFTConfig

from ft_plugin.callbacks.trackers import WANDB_VARIABLES
from ft_plugin.config import Recipe, load_recipe
from ft_plugin.config.schema.training import TRANSFORMERS_OPTIMIZERS, TrainingSection
from ft_plugin.engine import launch, prepare_run, sft_config
from ft_plugin.engine.run_notes import run_notes
from ft_plugin.engine.sft_config import Precision, build_sft_config, choose_tf32
from ft_plugin.engine.trainer import resume_point
from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir
from ft_plugin.train import train

EXAMPLES = Path(__file__).parent / "axolotl_examples"
hub = hub_fixture()
FP32 = Precision(False, False, torch.float32)
EVAL = "val_set_size: 6\n"  # 26 rows: 20 to train on (10 steps of 2 per epoch), 6 held out


def sft_for(recipe: Recipe, tmp_path: Path, has_eval: bool = True) -> SFTConfig:
    return build_sft_config(recipe, tmp_path / "run", precision=FP32,
                            gradient_checkpointing=False, has_eval=has_eval)  # fmt: skip


def logged_steps(run_dir: Path, key: str) -> list[int]:
    state = json.loads((run_dir / "trainer_state.json").read_text())
    return [h["step"] for h in state["log_history"] if key in h and "step" in h]


# --------------------------------------------------------------------- schedule


def test_warmup_ratio_is_a_fraction_of_the_run_and_excludes_warmup_steps(tmp_path: Path) -> None:
    args = sft_for(recipe_of(warmup_ratio=0.25), tmp_path)
    assert args.warmup_steps == 0.25 and args.get_warmup_steps(8) == 2
    assert sft_for(recipe_of(warmup_steps=0.5), tmp_path).get_warmup_steps(8) == 4
    assert sft_for(recipe_of(warmup_steps=3), tmp_path).get_warmup_steps(8) == 3
    tiny_recipe(tmp_path, "lora", warmup_ratio=0.1)  # its warmup_steps: 0 asks for nothing
    [line] = problems(tmp_path, extra="warmup_ratio: 0.1\n", warmup_steps=5)
    assert line.endswith("warmup_ratio: cannot be used with warmup_steps: keep one"), line
    assert re.search(r"lora\.yaml:\d+: ", line), "names the file and line"
    with pytest.raises(ValueError, match="neither a whole number"):
        recipe_of(warmup_steps=2.5)


def test_evals_and_saves_per_epoch_become_fractions_of_the_run(tmp_path: Path) -> None:
    args = sft_for(recipe_of(evals_per_epoch=4, saves_per_epoch=2, num_epochs=2), tmp_path)
    assert (args.eval_strategy, args.eval_steps) == ("steps", 0.125)  # 1 / (4 x 2)
    assert (args.save_strategy, args.save_steps) == ("steps", 0.25)
    once = sft_for(recipe_of(evals_per_epoch=1, saves_per_epoch=1), tmp_path)
    assert (once.eval_strategy, once.save_strategy) == ("epoch", "epoch")
    none = sft_for(recipe_of(evals_per_epoch=4), tmp_path, has_eval=False)
    assert none.eval_strategy == "no"
    assert any(
        "evals_per_epoch: no effect here" in n
        for n in run_notes(recipe_of(evals_per_epoch=4), False)
    )


@pytest.mark.slow
def test_evals_per_epoch_evaluates_and_saves_twice_an_epoch_in_a_real_run(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra=EVAL, max_steps="null", evals_per_epoch=2,
                         saves_per_epoch=2, save_total_limit=4)  # fmt: skip
    result = train(loaded, str(tmp_path / "run"))
    assert result.metrics["steps"] == 10
    assert logged_steps(result.run_dir, "eval_loss") == [5, 10]
    checkpoints = sorted((result.run_dir / "checkpoints").glob("checkpoint-*"))
    assert [p.name for p in checkpoints] == ["checkpoint-10", "checkpoint-5"]


def test_eval_and_save_strategies_use_transformers_names(tmp_path: Path) -> None:
    epoch = sft_for(recipe_of(eval_strategy="epoch", val_set_size=6), tmp_path)
    assert (epoch.eval_strategy, epoch.save_strategy) == ("epoch", "epoch")  # saves at each eval
    off = sft_for(recipe_of(eval_strategy="no", save_strategy="no", eval_steps=None), tmp_path)
    assert (off.eval_strategy, off.save_strategy) == ("no", "no")
    best = sft_for(recipe_of(save_strategy="best", eval_steps=2, val_set_size=6), tmp_path)
    assert (best.save_strategy, best.eval_strategy, best.eval_steps) == ("best", "steps", 2)
    assert best.metric_for_best_model == "eval_loss"
    with pytest.raises(ValueError, match="Input should be 'no', 'steps' or 'epoch'"):
        recipe_of(eval_strategy="best")


def test_contradicting_schedule_keys_are_all_reported_at_once(tmp_path: Path) -> None:
    found = problems(tmp_path, extra=EVAL, eval_steps=2, evals_per_epoch=2, save_steps=3,
                     saves_per_epoch=2, save_strategy="epoch")  # fmt: skip
    text = "\n".join(found)
    assert "evals_per_epoch: cannot be used with eval_steps" in text
    assert "saves_per_epoch: cannot be used with save_steps" in text
    assert "save_strategy: 'epoch' contradicts save_steps" in text
    assert len(found) == 4, found  # save_strategy also contradicts saves_per_epoch
    no_eval = problems(tmp_path, eval_strategy="steps", save_strategy="best")
    assert any("eval_strategy: needs an eval set" in p for p in no_eval)
    assert any("save_strategy: best saves at evaluations" in p for p in no_eval)


# --------------------------------------------------------------------- precision


def test_tf32_maps_to_training_arguments_where_a_gpu_has_it(tmp_path: Path) -> None:
    assert choose_tf32(recipe_of(tf32=True), gpu_has_tf32=True) is True
    assert choose_tf32(recipe_of(tf32="auto"), gpu_has_tf32=True) is True
    assert choose_tf32(recipe_of(tf32=False), gpu_has_tf32=True) is False
    assert choose_tf32(recipe_of(tf32=True), gpu_has_tf32=False) is None  # transformers refuses it
    if torch.cuda.is_available():
        pytest.skip("the CPU half of this test")
    assert sft_for(recipe_of(tf32=True), tmp_path).tf32 is None
    [note] = [n for n in run_notes(recipe_of(tf32=True), True) if n.startswith("tf32")]
    assert "no effect here" in note and "GPU" in note
    assert not [n for n in run_notes(recipe_of(tf32=False), True) if n.startswith("tf32")]


@pytest.mark.slow
def test_gradient_checkpointing_offload_and_kwargs_reach_the_model(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    offload = recipe_of(gradient_checkpointing="offload")
    on_gpu = sft_config.checkpointing_arguments(offload, enabled=True, accelerator=True)
    assert on_gpu["activation_checkpointing_kwargs"] == {"use_reentrant": False, "offload": True}
    gc_kwargs = '{"use_reentrant": true, "every_n_layers": 2}'
    loaded = tiny_recipe(tmp_path, "lora", gradient_checkpointing="offload",
                         gradient_checkpointing_kwargs=gc_kwargs, max_steps=1)  # fmt: skip
    prepared = prepare_run(loaded, str(tmp_path / "run"))
    args = prepared.trainer.args
    assert args.activation_checkpointing is True
    cuda = torch.cuda.is_available()
    expected = {"use_reentrant": True, "every_n_layers": 2, **({"offload": True} if cuda else {})}
    assert args.activation_checkpointing_kwargs == expected
    from ft_plugin.engine.run import run

    run(prepared)  # transformers turns checkpointing on when training starts
    layers = prepared.trainer.model.base_model.model.model.layers
    assert [layer.gradient_checkpointing for layer in layers] == [True, False]  # every 2nd
    func = layers[0]._gradient_checkpointing_func
    assert func.keywords == {"use_reentrant": True}
    assert (func.func is not torch.utils.checkpoint.checkpoint) == cuda  # save_on_cpu wrapper
    if not cuda:
        assert "gradient_checkpointing: offload: on a CPU" in capfd.readouterr().err


# --------------------------------------------------------------------- resume


@pytest.mark.slow
def test_resume_from_checkpoint_continues_a_named_checkpoint(tmp_path: Path) -> None:
    settings = {"max_steps": 4, "save_steps": 2, "save_total_limit": 4}
    first = train(tiny_recipe(tmp_path, "lora", **settings), str(tmp_path / "first")).run_dir
    named = first / "checkpoints" / "checkpoint-2"
    loaded = tiny_recipe(tmp_path, "lora", resume_from_checkpoint=str(named), **settings)
    second = train(loaded, str(tmp_path / "second"))
    progress = [json.loads(line) for line in (second.run_dir / "progress.jsonl").open()]
    assert [p["step"] for p in progress] == [3, 4], "steps 1-2 came from the checkpoint"
    a = load_file(first / "adapter_model.safetensors")
    b = load_file(second.run_dir / "adapter_model.safetensors")
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=1e-5)
    # Axolotl's habit: name a checkpoint of the same run directory (not another recipe).
    same = RunDir(first)
    again = tiny_recipe(tmp_path, "lora", resume_from_checkpoint=str(named), **settings)
    assert resume_point(again.recipe, same, again.to_yaml(), False) == named
    assert resume_point(again.recipe, same, again.to_yaml(), True).name == "checkpoint-4"
    auto = tiny_recipe(tmp_path, "lora", auto_resume_from_checkpoints="true", **settings)
    assert resume_point(auto.recipe, same, auto.to_yaml(), False).name == "checkpoint-4"
    plain = tiny_recipe(tmp_path, "lora", **settings)
    assert resume_point(plain.recipe, same, plain.to_yaml(), False) is None  # a fresh start


def test_resume_from_checkpoint_refuses_a_contradiction_and_a_wrong_folder(tmp_path: Path) -> None:
    [line] = problems(tmp_path, resume="true", resume_from_checkpoint=str(tmp_path))
    assert "resume_from_checkpoint: cannot be used with resume" in line
    loaded = tiny_recipe(tmp_path, "lora", resume_from_checkpoint=str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match=r"not a checkpoint folder \(no trainer_state.json\)"):
        prepare_run(loaded, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()


# --------------------------------------------------------------------- optimizer


def test_optimizer_names_are_transformers_and_axolotls() -> None:
    assert set(TRANSFORMERS_OPTIMIZERS) == {o.value for o in OptimizerNames}
    with pytest.raises(ValueError) as caught:
        recipe_of(optimizer="adamw_bnb_8bits")
    message = str(caught.value)
    assert "did you mean 'adamw_bnb_8bit'?" in message and "adamw_torch_fused" in message
    assert "muon" in message and "came_pytorch" in message  # Axolotl's own are known too


def test_optimizers_that_cannot_run_here_fall_back_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert sft_config.resolve_optimizer("adamw_torch_fused", cuda=False) == (
        "adamw_torch_fused",
        None,
    )
    optim, note = sft_config.resolve_optimizer("muon", cuda=False)
    assert optim == "adamw_torch" and "muon is Axolotl's own optimizer" in note
    optim, note = sft_config.resolve_optimizer("paged_adamw_8bit", cuda=False)
    assert optim == "paged_adamw_8bit" and "the same optimizer without paging" in note
    real_find_spec = sft_config.importlib.util.find_spec
    monkeypatch.setattr(sft_config.importlib.util, "find_spec",
                        lambda name: None if name in ("bitsandbytes", "torchao") else real_find_spec(name))  # fmt: skip
    optim, note = sft_config.resolve_optimizer("adamw_bnb_8bit", cuda=False)
    assert optim == "adamw_torch" and "pip install bitsandbytes" in note
    optim, note = sft_config.resolve_optimizer("ao_adamw_8bit", cuda=False)
    assert optim == "adamw_torch" and "ao_adamw_8bit needs torchao" in note


def test_adam_settings_and_an_8bit_optimizer_reach_the_optimizer(tmp_path: Path) -> None:
    require("bitsandbytes", "the qlora extra (make setup installs .[all])")
    loaded = tiny_recipe(tmp_path, "lora", optimizer="adamw_bnb_8bit", adam_beta1=0.8,
                         adam_beta2=0.95, adam_epsilon=1e-5, max_steps=2)  # fmt: skip
    result = train(loaded, str(tmp_path / "run"))
    assert result.metrics["steps"] == 2 and result.metrics["train_loss"] > 0
    prepared = prepare_run(loaded, str(tmp_path / "other"))
    optimizer = prepared.trainer.create_optimizer()
    assert type(optimizer).__module__.startswith("bitsandbytes")
    group = optimizer.param_groups[0]
    assert group["betas"] == (0.8, 0.95) and group["eps"] == 1e-5
    assert optimizer.args.optim_bits == 8


# --------------------------------------------------------------------- columns, packing


def test_remove_unused_columns_false_hands_every_column_to_the_collator(tmp_path: Path) -> None:
    default = prepare_run(tiny_recipe(tmp_path, "lora"), str(tmp_path / "a")).trainer
    kept = prepare_run(tiny_recipe(tmp_path, "lora", remove_unused_columns="false"),
                       str(tmp_path / "b")).trainer  # fmt: skip
    assert kept.args.remove_unused_columns is False
    assert default.get_train_dataloader().dataset.column_names == ["input_ids", "labels"]
    assert {"prompt", "completion"} <= set(kept.get_train_dataloader().dataset.column_names)


def test_eval_sample_packing_false_evaluates_on_padded_batches(tmp_path: Path) -> None:
    loaded = tiny_recipe(tmp_path, "lora", extra=EVAL, sample_packing="true",
                         eval_sample_packing="false", pad_to_sequence_len="true")  # fmt: skip
    trainer = prepare_run(loaded, str(tmp_path / "run")).trainer
    train_batch = next(iter(trainer.get_train_dataloader()))
    eval_batch = next(iter(trainer.get_eval_dataloader()))
    assert "attention_mask" not in train_batch and train_batch["input_ids"].shape[0] == 1
    assert eval_batch["attention_mask"].shape == (2, 96)  # two rows, padded to sequence_len
    packed = prepare_run(tiny_recipe(tmp_path, "lora", extra=EVAL, sample_packing="true"),
                         str(tmp_path / "packed")).trainer  # fmt: skip
    assert "attention_mask" not in next(iter(packed.get_eval_dataloader()))


def test_pad_to_sequence_len_pads_every_batch(tmp_path: Path) -> None:
    trainer = prepare_run(tiny_recipe(tmp_path, "lora", pad_to_sequence_len="true"),
                          str(tmp_path / "run")).trainer  # fmt: skip
    assert trainer.args.pad_to_multiple_of == 96
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape == (2, 96)
    plain = prepare_run(tiny_recipe(tmp_path, "lora"), str(tmp_path / "plain")).trainer
    assert next(iter(plain.get_train_dataloader()))["input_ids"].shape[1] < 96


def test_sample_packing_sequentially_fills_bins_in_data_order(tmp_path: Path) -> None:
    def bins(**keys: object) -> tuple[list[list[int]], list[list[int]]]:
        trainer = prepare_run(tiny_recipe(tmp_path, "lora", sample_packing="bins", **keys),
                              str(tmp_path / f"run{len(keys)}")).trainer  # fmt: skip
        packed = trainer.train_dataset
        return packed["input_ids"], packed["seq_lengths"]

    rows = prepare_run(tiny_recipe(tmp_path, "lora"), str(tmp_path / "rows")).trainer
    in_order = [token for row in rows.train_dataset["input_ids"] for token in row]
    ids, lengths = bins(sample_packing_sequentially="true")
    assert [token for packed in ids for token in packed] == in_order  # nothing reordered
    assert all(sum(seq) <= 96 for seq in lengths)
    for index in range(len(lengths) - 1):  # a bin closes only when the next row does not fit
        assert sum(lengths[index]) + lengths[index + 1][0] > 96
    best_fit, _ = bins()
    assert [token for packed in best_fit for token in packed] != in_order  # BFD sorts by length


# --------------------------------------------------------------------- watchdog


@pytest.mark.slow
def test_loss_watchdog_stops_a_broken_run_and_records_why(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    loaded = tiny_recipe(tmp_path, "lora", loss_watchdog_threshold=0.01,
                         loss_watchdog_patience=2, max_steps=10)  # fmt: skip
    result = train(loaded, str(tmp_path / "run"))
    assert result.metrics["steps"] == 2
    assert result.metrics["stopped"]["step"] == 2
    status = RunDir(result.run_dir).status()
    assert status["state"] == "stopped"
    assert "stayed above loss_watchdog_threshold 0.01 for 2 logged steps" in status["reason"]
    assert "ft-plugin: stopping: loss" in capfd.readouterr().err
    assert (result.run_dir / "adapter_model.safetensors").is_file()


# --------------------------------------------------------------------- W&B


def wandb_history(run_file: Path) -> list[dict[str, object]]:
    """The history rows of a W&B offline run file (records in LevelDB's log format:
    7-byte file header, 32 KiB blocks, each record a 7-byte header and a protobuf)."""
    from wandb.proto import wandb_internal_pb2

    raw, position, pending, rows = run_file.read_bytes(), 7, b"", []
    while position + 7 <= len(raw):
        if 32768 - position % 32768 < 7:  # a block's tail too short for a header is padding
            position += 32768 - position % 32768
            continue
        _crc, length, kind = struct.unpack("<IHB", raw[position : position + 7])
        chunk, position = raw[position + 7 : position + 7 + length], position + 7 + length
        pending = chunk if kind in (1, 2) else pending + chunk  # full / first, then middle, last
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            if record.WhichOneof("record_type") == "history":
                items = record.history.item
                rows.append(
                    {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                )
    return rows


@pytest.mark.slow
def test_wandb_offline_run_gets_the_metrics_and_never_the_api_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    secret = "f0e1d2c3b4a5968778695a4b3c2d1e0ff0e1d2c3"
    for name in (*WANDB_VARIABLES.values(), "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / name.lower()))
    monkeypatch.setenv("WANDB_API_KEY", secret)
    loaded = tiny_recipe(tmp_path, "lora", report_to="tensorboard",
                         extra="wandb_project: ft-test\nwandb_entity: team\n"
                         "wandb_name: tiny\nwandb_mode: offline\nwandb_log_model: 'false'\n")  # fmt: skip
    prepared = prepare_run(loaded, str(tmp_path / "run"))
    assert "wandb" in prepared.trainer.args.report_to and prepared.trainer.args.run_name == "tiny"
    assert (os.environ["WANDB_PROJECT"], os.environ["WANDB_MODE"]) == ("ft-test", "offline")
    from ft_plugin.engine.run import run

    result = run(prepared)
    assert "WANDB_PROJECT" not in os.environ, "the run's W&B variables are put back"
    [run_file] = (tmp_path / "wandb_dir" / "wandb").glob("offline-run-*/run-*.wandb")
    losses = [row["train/loss"] for row in wandb_history(run_file) if "train/loss" in row]
    state = json.loads((result.run_dir / "trainer_state.json").read_text())
    assert losses == pytest.approx([h["loss"] for h in state["log_history"] if "loss" in h])
    output = capfd.readouterr()
    assert "reporting to W&B project team/ft-test, run tiny (offline)" in output.err
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), path
    assert secret not in output.out + output.err


def test_wandb_without_the_package_is_refused_with_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ft_plugin.callbacks import trackers

    real_find_spec = trackers.importlib.util.find_spec
    monkeypatch.setattr(trackers.importlib.util, "find_spec",
                        lambda name: None if name == "wandb" else real_find_spec(name))  # fmt: skip
    loaded = tiny_recipe(tmp_path, "lora", wandb_project="p", report_to="tensorboard")
    with pytest.raises(UserError, match="pip install wandb"):
        prepare_run(loaded, str(tmp_path / "run"))
    off = tiny_recipe(tmp_path, "lora", wandb_project="p", use_wandb="false",
                      report_to="tensorboard")  # fmt: skip
    assert "wandb" not in prepare_run(off, str(tmp_path / "off")).trainer.args.report_to
    none = tiny_recipe(tmp_path, "lora", wandb_project="p", report_to="none")
    assert prepare_run(none, str(tmp_path / "none")).trainer.args.report_to == []


# --------------------------------------------------------------------- several processes


def test_deepspeed_names_axolotls_builtin_configs_a_file_or_a_mapping(tmp_path: Path) -> None:
    builtin = launch.resolve_deepspeed("deepspeed_configs/zero3_bf16.json")
    assert builtin["zero_optimization"]["stage"] == 3 and builtin["bf16"] == {"enabled": True}
    assert launch.resolve_deepspeed("zero2")["zero_optimization"]["stage"] == 2
    own = tmp_path / "ds.json"
    own.write_text('{"zero_optimization": {"stage": 1}}')
    assert launch.resolve_deepspeed(str(own)) == {"zero_optimization": {"stage": 1}}
    assert launch.resolve_deepspeed({"zero_optimization": {"stage": 2}})["zero_optimization"]
    with pytest.raises(UserError, match=r"no such file; .*deepspeed_configs/zero3_bf16.json"):
        launch.resolve_deepspeed("deepspeed_configs/zero9.json")


def test_deepspeed_validates_and_refuses_at_start_without_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_find_spec = launch.importlib.util.find_spec
    monkeypatch.setattr(launch.importlib.util, "find_spec",
                        lambda name: None if name == "deepspeed" else real_find_spec(name))  # fmt: skip
    loaded = tiny_recipe(tmp_path, "lora", deepspeed="deepspeed_configs/zero3_bf16.json")
    with pytest.raises(UserError, match=r"^deepspeed: DeepSpeed is not installed: pip install"):
        prepare_run(loaded, str(tmp_path / "run"))
    assert not (tmp_path / "run").exists()
    monkeypatch.setattr(launch.importlib.util, "find_spec", lambda name: object())
    arguments = launch.distributed_arguments(loaded.recipe, processes=2)
    assert (
        arguments["deepspeed"]["zero_optimization"]["stage"] == 3
    )  # TrainingArguments(deepspeed=)


FSDP_EXAMPLE = """
fsdp:
  - full_shard
  - auto_wrap
fsdp_config:
  fsdp_limit_all_gathers: true
  fsdp_sync_module_states: true
  fsdp_offload_params: true
  fsdp_use_orig_params: false
  fsdp_cpu_ram_efficient_loading: true
  fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
  fsdp_transformer_layer_cls_to_wrap: LlamaDecoderLayer
  fsdp_state_dict_type: FULL_STATE_DICT
  fsdp_sharding_strategy: FULL_SHARD
ddp_find_unused_parameters: true
"""  # Axolotl's examples/llama-3/qlora-fsdp-70b.yaml, FSDP1 spelling


def test_fsdp_config_reaches_training_arguments_under_several_processes(tmp_path: Path) -> None:
    recipe = tiny_recipe(tmp_path, "lora", extra=FSDP_EXAMPLE).recipe
    arguments = launch.distributed_arguments(recipe, processes=2)
    assert arguments["fsdp"] is True and arguments["ddp_find_unused_parameters"] is True
    args = SFTConfig(output_dir=str(tmp_path / "out"), use_cpu=True, report_to=[], **arguments)
    assert args.fsdp_plugin_args == {
        "fsdp_version": 2, "cpu_offload": True, "auto_wrap_policy": "TRANSFORMER_BASED_WRAP",
        "transformer_cls_names_to_wrap": "LlamaDecoderLayer", "cpu_ram_efficient_loading": True,
        "state_dict_type": "FULL_STATE_DICT", "reshard_after_forward": True,
    }  # fmt: skip
    assert args.ddp_find_unused_parameters is True
    one = launch.distributed_arguments(recipe, processes=1)
    assert "fsdp" not in one, "transformers refuses FSDP in one process"
    notes = launch.distributed_notes(recipe, processes=1)
    assert any(n.startswith("fsdp_config: FSDP shards the model across processes") for n in notes)
    assert "fsdp_config.sync_module_states: no effect here: an FSDP1 setting" in "\n".join(notes)


def test_fsdp_keys_axolotl_refuses_are_refused_here_with_what_to_write(tmp_path: Path) -> None:
    found = "\n".join(problems(tmp_path, extra="fsdp_version: 1\nfsdp_config:\n  "
                               "final_state_dict_type: SHARDED_STATE_DICT\n"))  # fmt: skip
    assert "fsdp_version: FSDP1 is not supported (transformers 5 runs FSDP2); write 2" in found
    assert "SHARDED_STATE_DICT: the run directory holds whole, loadable weights" in found
    [line] = problems(tmp_path, extra="fsdp: [hybrid_shard]\n")
    assert "'hybrid_shard' is not an FSDP2 option" in line


def test_axolotls_example_configs_training_keys_validate(tmp_path: Path) -> None:
    """Every vendored Axolotl example's training keys (multi-GPU ones included) validate,
    and build TrainingArguments transformers accepts (DeepSpeed aside: not installed)."""
    configs = sorted(EXAMPLES.rglob("*.y*ml"))
    distributed = [c for c in configs if re.search(r"^(deepspeed|fsdp\w*):", c.read_text(), re.M)]
    assert len(distributed) >= 40, "the multi-GPU examples are vendored"
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"instruction": "a", "input": "", "output": "b"}\n')
    for config in configs:
        data = yaml.safe_load(config.read_text(encoding="utf-8"))
        ours = {k: v for k, v in data.items() if k in TrainingSection.model_fields}
        doc = {"base_model": "x", "datasets": [{"path": str(rows)}], **ours,
               "val_set_size": data.get("val_set_size") or 0}  # fmt: skip
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        recipe = load_recipe(str(path)).recipe  # raises with every problem of the file
        if not recipe.deepspeed:
            sft_for(recipe, tmp_path, has_eval=bool(doc["val_set_size"]))


# --------------------------------------------------------------------- remote recipes

REMOTE_REFUSED = [
    ("resume_from_checkpoint: runs/x/checkpoints/checkpoint-2\n", "resume_from_checkpoint",
     "loads a checkpoint folder from this machine"),
    ("deepspeed: /home/me/ds.json\n", "deepspeed", "reads a DeepSpeed file"),
    ("deepspeed:\n  zero_optimization:\n    offload_param: {device: nvme, nvme_path: /x}\n",
     "deepspeed", "reads a DeepSpeed file (or sets offload folders)"),
    ("wandb_project: attacker\n", "wandb_project", "sends the run's metrics and settings"),
    ("use_wandb: true\n", "use_wandb", "sends the run's metrics and settings"),
    ("wandb_log_model: end\n", "wandb_log_model", "uploads the model to Weights & Biases"),
]  # fmt: skip


@pytest.mark.parametrize(("snippet", "key", "reason"), REMOTE_REFUSED,
                         ids=[f"{r[1]}-{i}" for i, r in enumerate(REMOTE_REFUSED)])  # fmt: skip
def test_a_remote_recipe_may_not_read_checkpoints_or_report_to_wandb(
    hub: HubServer, tmp_path: Path, snippet: str, key: str, reason: str
) -> None:
    hub.add_repo("team/recipes", files={"base.yaml": f"description: shared\n{snippet}"})
    child = tmp_path / "child.yaml"
    child.write_text("extends: hf://team/recipes/base.yaml\n", encoding="utf-8")
    with pytest.raises(UserError) as caught:  # a RecipeError: file, line, key, what instead
        load_recipe(str(child))
    message = str(caught.value)
    assert message.startswith(f"hf://team/recipes/base.yaml:2: {key}: {reason}"), message
    assert "set it in your local recipe, or pass --trust-recipe" in message


def test_a_remote_axolotl_config_with_builtin_and_empty_keys_loads(
    hub: HubServer, tmp_path: Path
) -> None:
    text = ("deepspeed: deepspeed_configs/zero3_bf16.json\nwandb_project:\nwandb_entity:\n"
            "resume_from_checkpoint:\nwandb_log_model:\ndatasets:\n  - path: builtin:medical\n"
            "    type: medical\n")  # fmt: skip
    hub.add_repo("team/recipes", files={"base.yaml": text})
    child = tmp_path / "child.yaml"
    child.write_text("extends: hf://team/recipes/base.yaml\n", encoding="utf-8")
    recipe = load_recipe(str(child)).recipe
    assert recipe.deepspeed == "deepspeed_configs/zero3_bf16.json"
    assert recipe.wandb_project is None and not recipe.wandb_enabled()


def test_sample_packing_true_says_it_is_rows_and_how_to_ask_for_axolotls_bins() -> None:
    [note] = [
        n
        for n in run_notes(recipe_of(sample_packing=True, micro_batch_size=2), False)
        if "sample_packing" in n
    ]
    assert note.startswith("sample_packing: true packs the 2 rows of each micro-batch")
    assert "write sample_packing: bins" in note
    for quiet in ("rows", "bins", False):
        assert not [n for n in run_notes(recipe_of(sample_packing=quiet), False)
                    if n.startswith("sample_packing:")]  # fmt: skip
