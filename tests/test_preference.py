"""Preference tuning (`rl:`): Axolotl's preference dataset types rendered as Axolotl
renders them, every rl: method training on TRL's trainer, rewards in metrics.json, and
the mistakes a user makes refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from axolotl_configs import swapped
from helpers import write_rows
from tiny import save_tiny_model, tiny_tokenizer

from ft_plugin import engine
from ft_plugin.config import load_recipe
from ft_plugin.config.schema import DatasetSection
from ft_plugin.config.schema.preference import KTO_TYPES, PAIR_TYPES
from ft_plugin.data.preferences import KTO_FIELDS, PAIR_FIELDS, PreferenceRenderer, preference_rows
from ft_plugin.errors import RecipeError

CHATML_Q = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"


def render(kind: str, row: dict, kto: bool = False, **keys: object) -> dict:
    spec = DatasetSection(path="x", type=kind, **keys)
    rows, dropped = preference_rows([row], spec, PreferenceRenderer(spec, tiny_tokenizer(), None),
                                    kto)  # fmt: skip
    assert not dropped, dropped
    return rows[0]


def test_every_declared_type_has_a_reader() -> None:
    fixed = {t.split(".", 1)[1] for t in PAIR_TYPES if not t.startswith("chat_template.")}
    assert fixed == set(PAIR_FIELDS)
    assert {t.split(".", 1)[1] for t in KTO_TYPES} == set(KTO_FIELDS)


def test_chatml_intel_is_axolotls_text() -> None:
    row = render("chatml.intel", {"system": "Be brief.", "question": "What is 2+2?",
                                  "chosen": "4", "rejected": "5"})  # fmt: skip
    assert row == {
        "prompt": "<|im_start|>system\nBe brief.<|im_end|>\n" + CHATML_Q,
        "chosen": "4<|im_end|>",
        "rejected": "5<|im_end|>",
    }


def test_llama3_prompt_pairs_is_axolotls_text() -> None:
    row = render("llama3.prompt_pairs", {"prompt": "Hi", "chosen": "Hello", "rejected": "Go"})
    assert row["prompt"] == ("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n")  # fmt: skip
    assert (row["chosen"], row["rejected"]) == ("Hello<|eot_id|>", "Go<|eot_id|>")


def test_chat_template_default_maps_columns_keys_and_roles() -> None:
    row = render(
        "chat_template.default",
        {"conversation": [{"from": "human", "value": "What is 2+2?"}],
         "good": {"from": "gpt", "value": "4"}, "bad": {"from": "gpt", "value": "5"}},
        field_messages="conversation", field_chosen="good", field_rejected="bad",
        message_property_mappings={"role": "from", "content": "value"},
        roles={"user": ["human"], "assistant": ["gpt"]},
    )  # fmt: skip
    assert row["prompt"] == CHATML_Q  # the tiny tokenizer's template is ChatML
    assert (row["chosen"], row["rejected"]) == ("4<|im_end|>", "5<|im_end|>")


def test_chat_template_argilla_takes_the_prompt_from_the_conversation() -> None:
    ask = {"role": "user", "content": "What is 2+2?"}
    row = render("chat_template.argilla", {
        "chosen": [ask, {"role": "assistant", "content": "4"}],
        "rejected": [ask, {"role": "assistant", "content": "5"}],
    })  # fmt: skip
    assert row == {"prompt": CHATML_Q, "chosen": "4<|im_end|>", "rejected": "5<|im_end|>"}


def test_kto_argilla_keeps_the_label() -> None:
    row = render("chatml.argilla", {"instruction": "What is 2+2?", "completion": "5",
                                    "label": False}, kto=True)  # fmt: skip
    assert row == {"prompt": CHATML_Q, "completion": "5<|im_end|>", "label": False}


def test_rows_without_an_answer_are_dropped_and_counted() -> None:
    spec = DatasetSection(path="x", type="chatml.intel")
    rows, dropped = preference_rows(
        [{"question": "Q", "chosen": "A", "rejected": ""}, {"question": "Q", "chosen": "A"}],
        spec, PreferenceRenderer(spec, None, None),
    )  # fmt: skip
    assert rows == [] and dropped == {"missing_or_empty_field": 2}


def write_recipe(tmp_path: Path, body: str) -> Path:
    model = tmp_path / "m"
    if not model.exists():
        save_tiny_model(model)
    path = tmp_path / "r.yaml"
    path.write_text(f"base_model: {model}\n{body}", encoding="utf-8")
    return path


def one_line_error(path: Path) -> str:
    with pytest.raises(RecipeError) as raised:
        load_recipe(str(path))
    lines = str(raised.value).splitlines()
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ("rl: grpo\ndatasets:\n  - path: p.jsonl\n    type: chatml.intel\n",
         "rl: grpo: online RL (GRPO) generates answers"),
        ("rl: dpo\ndatasets:\n  - path: p.jsonl\n    type: alpaca\n",
         "datasets.0.type: alpaca is not a preference dataset type; rl: dpo reads pairs"),
        ("rl: kto\ndatasets:\n  - path: p.jsonl\n    type: chatml.icr\n",
         "chatml.icr is not a KTO dataset type"),
        ("datasets:\n  - path: p.jsonl\n    type: chatml.intel\n",
         "chatml.intel is a preference dataset type: set rl: dpo"),
        ("rl_beta: 0.2\ndatasets:\n  - path: p.jsonl\n", "rl_beta: is read only with rl:"),
    ],
)  # fmt: skip
def test_preference_mistakes_are_refused_in_one_line(tmp_path: Path, body: str, says: str) -> None:
    assert says in one_line_error(write_recipe(tmp_path, body))


PAIRS = [{"system": "Be brief." if i % 2 else "", "question": f"What is {i}+{i}?",
          "chosen": f"{2 * i}.", "rejected": f"I do not know {i}."} for i in range(24)]  # fmt: skip
JUDGED = [{"instruction": f"What is {i}+{i}?", "completion": f"{2 * i}." if i % 2 else "no idea",
           "label": bool(i % 2)} for i in range(24)]  # fmt: skip


def preference_run(tmp_path: Path, rl: str, adapter: str = "lora") -> dict:
    rows, kind = (JUDGED, "chatml.argilla") if rl == "kto" else (PAIRS, "chatml.intel")
    data = write_rows(tmp_path / "rows.jsonl", rows)
    path = write_recipe(
        tmp_path,
        f"""adapter: {adapter}
rl: {rl}
datasets:
  - path: {data}
    type: {kind}
val_set_size: 4
sequence_len: 128
micro_batch_size: 2
max_steps: 3
learning_rate: 1.0e-3
logging_steps: 1
eval_steps: 3
report_to: none
bf16: false
lora_r: 4
lora_alpha: 8
""",
    )
    result = engine.run(engine.prepare_run(load_recipe(str(path)), str(tmp_path / "run")))
    assert result.metrics == json.loads((tmp_path / "run" / "metrics.json").read_text())
    return result.metrics


@pytest.mark.parametrize(
    ("rl", "adapter"),
    [("dpo", "lora"), ("ipo", "lora"), ("orpo", "lora"), ("kto", "lora"), ("simpo", "lora"),
     ("dpo", "full")],
)  # fmt: skip
def test_every_rl_method_trains_and_reports_rewards(tmp_path: Path, rl: str, adapter: str) -> None:
    metrics = preference_run(tmp_path, rl, adapter)
    assert metrics["steps"] == 3 and metrics["train_rows"] == 20 and metrics["eval_rows"] == 4
    assert metrics["rows_per_step"] == 2.0  # pairs (or judged answers), not stacked rows
    for split in ("train", "eval"):
        rewards = metrics["rewards"][split]
        assert {"chosen", "margin"} <= set(rewards)
        if rl != "kto":  # KTO logs no pairwise accuracy
            assert 0.0 <= rewards["accuracy"] <= 1.0
            assert rewards["margin"] == pytest.approx(
                rewards["chosen"] - rewards["rejected"], abs=1e-5
            )
    run = tmp_path / "run"
    saved = "adapter_model.safetensors" if adapter == "lora" else "model.safetensors"
    assert (run / saved).is_file() and not (run / "ref").exists()  # no reference copy kept


def test_dpo_moves_the_policy_towards_the_chosen_answers(tmp_path: Path) -> None:
    # A full DPO step on a random tiny model: the margin grows from 0 (the policy starts
    # equal to its reference) and the held-out pairs agree.
    metrics = preference_run(tmp_path, "dpo", "full")
    assert metrics["rewards"]["eval"]["margin"] > 0.05
    assert metrics["rewards"]["eval"]["accuracy"] == 1.0


def test_axolotls_own_dpo_example_validates_as_written(tmp_path: Path) -> None:
    config = Path(__file__).parent / "axolotl_preference" / "dpo.yaml"
    save_tiny_model(tmp_path / "m")
    loaded = load_recipe(str(swapped(config, tmp_path / "cfg", base_model=str(tmp_path / "m"))))
    recipe = loaded.recipe
    assert recipe.rl == "dpo" and recipe.adapter == "lora" and recipe.load_in_8bit
    assert recipe.datasets[0].type == "chat_template.default"
    assert recipe.datasets[0].field_messages == "conversation"
    assert all("swanlab" in note for note in loaded.notes)  # only its tracker has no effect


@pytest.mark.e2e
def test_axolotls_own_dpo_example_trains_as_written(tmp_path: Path) -> None:
    # Axolotl's DPO example (Llama 3 chat template, LoRA over an 8-bit base, 4 epochs of
    # fozziethebeat/alpaca_messages_2k_dpo_test's shape), on a tiny model with a BOS token
    # for the Llama 3 template to write.
    from transformers import AutoTokenizer

    model = save_tiny_model(tmp_path / "m")
    tokenizer = AutoTokenizer.from_pretrained(model)
    tokenizer.bos_token = "<|endoftext|>"
    tokenizer.save_pretrained(model)
    config = Path(__file__).parent / "axolotl_preference" / "dpo.yaml"
    loaded = load_recipe(str(swapped(config, tmp_path / "cfg", base_model=str(model))))
    result = engine.run(engine.prepare_run(loaded, str(tmp_path / "run")))
    assert result.metrics["train_rows"] == 38 and result.metrics["eval_rows"] == 2
    assert result.metrics["steps"] == 20  # 4 epochs of 38 pairs, 2 per micro-batch × 4
    assert result.metrics["rewards"]["eval"]["accuracy"] >= 0.5


def test_a_chat_template_that_fails_on_every_pair_says_why(tmp_path: Path) -> None:
    from ft_plugin.data import build_training_data
    from ft_plugin.errors import DataError

    config = Path(__file__).parent / "axolotl_preference" / "dpo.yaml"
    save_tiny_model(tmp_path / "m")  # no BOS token: Llama 3's template cannot render
    loaded = load_recipe(str(swapped(config, tmp_path / "cfg", base_model=str(tmp_path / "m"))))
    with pytest.raises(DataError, match="no usable rows for type chat_template.default.*bos_token"):
        build_training_data(loaded.recipe, tiny_tokenizer())


def test_stages_train_sft_then_dpo_from_the_sft_adapter(tmp_path: Path) -> None:
    from ft_plugin.train import train

    pairs = write_rows(tmp_path / "pairs.jsonl", PAIRS)
    path = write_recipe(
        tmp_path,
        f"""adapter: lora
datasets:
  - path: {write_rows(tmp_path / "rows.jsonl")}
    type: alpaca
sequence_len: 128
micro_batch_size: 2
max_steps: 2
report_to: none
bf16: false
lora_r: 4
lora_alpha: 8
stages:
  - name: sft
    learning_rate: 2.0e-2
  - name: dpo
    rl: dpo
    rl_beta: 0.2
    learning_rate: 1.0e-3
    datasets:
      - path: {pairs}
        type: chatml.intel
""",
    )
    result = train(load_recipe(str(path)), str(tmp_path / "run"))
    stages = result.metrics["stages"]
    assert "rewards" not in stages["sft"] and "rewards" in stages["dpo"]
    assert result.metrics["rewards"] == stages["dpo"]["rewards"]
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()
    assert not (tmp_path / "run" / "ref").exists()
    # The reference is the SFT adapter, not the base: before the first DPO update the
    # policy equals its reference, so the first logged rewards are 0 (with the base as the
    # reference they would carry the SFT stage's log-ratio to the base).
    state = json.loads((tmp_path / "run" / "stages" / "dpo" / "trainer_state.json").read_text())
    first = state["log_history"][0]
    assert abs(first["rewards/chosen"]) < 1e-3 and abs(first["rewards/rejected"]) < 1e-3


def test_a_preference_run_trains_without_dropout_as_trl_does(tmp_path: Path) -> None:
    # TRL turns dropout off so that policy and reference score alike; the engine's own
    # shared LoRA dropout must follow, or the first rewards are noise instead of 0.
    from ft_plugin.speed.lora_layers import SharedInputDropout

    data = write_rows(tmp_path / "rows.jsonl", PAIRS)
    path = write_recipe(
        tmp_path,
        f"""adapter: lora
lora_dropout: 0.2
rl: dpo
datasets:
  - path: {data}
    type: chatml.intel
report_to: none
bf16: false
""",
    )
    prepared = engine.prepare_run(load_recipe(str(path)), str(tmp_path / "run"))
    dropouts = [m for m in prepared.trainer.model.modules() if isinstance(m, SharedInputDropout)]
    assert dropouts and all(m.p == 0.0 for m in dropouts)


def test_eval_of_a_dpo_run_ranks_pairs_as_trl_does(tmp_path: Path) -> None:
    # reward_margin / reward_accuracy against the start (the base, for a new adapter) are
    # what TRL's own evaluation logged at the last step, computed again independently.
    from ft_plugin.evaluate.dataset import EvalSettings
    from ft_plugin.evaluate.runner import run_evaluation

    metrics = preference_run(tmp_path, "dpo")
    report, results, _, data = run_evaluation(str(tmp_path / "run"), EvalSettings(bootstrap=200))
    tuned, start = report.models["target"], report.models["baseline"]
    assert report.data["rows"] == 4 and len(data.examples) == 4
    assert tuned["reward_margin"] == pytest.approx(metrics["rewards"]["eval"]["margin"], abs=1e-4)
    assert tuned["reward_accuracy"] == pytest.approx(metrics["rewards"]["eval"]["accuracy"])
    assert start["reward_margin"] == 0 and start["reward_accuracy"] == 0
    assert 0 <= tuned["pair_accuracy"] <= 1 and tuned["answer_perplexity"] > 1
    lo, hi = report.intervals["delta"]["reward_margin"]
    assert lo <= report.delta["reward_margin"] <= hi


def test_eval_command_on_a_dpo_run_writes_the_pair_metrics(tmp_path: Path) -> None:
    from helpers import cli

    preference_run(tmp_path, "dpo")
    run = tmp_path / "run"
    done = cli("eval", str(run), "--metrics", "rougeL", "--max-new-tokens", "4",
               env={"HF_HUB_OFFLINE": "1"})  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads((run / "eval" / "report.json").read_text())
    assert set(report["models"]["target"]) == {"pair_accuracy", "reward_accuracy",
                                               "reward_margin", "answer_perplexity", "rougeL"}  # fmt: skip
    lines = {line.split()[0]: line for line in done.stdout.splitlines() if line.strip()}
    assert "reward_margin" in lines and "answer_perplexity" in lines
    predictions = (run / "eval" / "predictions.jsonl").read_text().splitlines()
    assert len(predictions) == 4 and json.loads(predictions[0])["prompt"].startswith("<|im_start|>")


AXOLOTL_PREFERENCE = Path(__file__).parent / "axolotl_preference"


@pytest.mark.parametrize(
    ("name", "rl", "kind"),
    [("qlora-1b-kto.yaml", "kto", "llama3.ultra"),
     ("mistral-qlora-orpo.yml", "orpo", "chat_template.argilla")],
)  # fmt: skip
def test_axolotls_kto_and_orpo_examples_validate_as_written(
    tmp_path: Path, name: str, rl: str, kind: str
) -> None:
    save_tiny_model(tmp_path / "m")
    config = swapped(AXOLOTL_PREFERENCE / name, tmp_path / "cfg", base_model=str(tmp_path / "m"))
    loaded = load_recipe(str(config))
    assert loaded.recipe.rl == rl and loaded.recipe.datasets[0].type == kind
    assert loaded.recipe.adapter == "qlora" and loaded.recipe.load_in_4bit


@pytest.mark.e2e
@pytest.mark.parametrize("name", ["qlora-1b-kto.yaml", "mistral-qlora-orpo.yml"])
def test_axolotls_kto_and_orpo_examples_train_as_written(tmp_path: Path, name: str) -> None:
    # QLoRA over a 4-bit tiny Llama; the ORPO config's MistralForCausalLM loads the Llama
    # base as its own class, with the line saying so (as for its SFT examples).
    model = save_tiny_model(tmp_path / "m")
    config = swapped(AXOLOTL_PREFERENCE / name, tmp_path / "cfg", base_model=str(model))
    result = engine.run(engine.prepare_run(load_recipe(str(config)), str(tmp_path / "run")))
    assert result.metrics["steps"] >= 1 and "rewards" in result.metrics
    assert (tmp_path / "run" / "adapter_model.safetensors").is_file()


def test_the_summary_line_of_a_dpo_run_with_held_out_pairs_shows_its_rewards() -> None:
    # Measured: `ft-plugin train` crashed here after training (a preference loss has no
    # perplexity), though the run directory was complete.
    from ft_plugin.engine.run import RunResult
    from ft_plugin.train.command import summary_line

    metrics = {"train_loss": 0.2391, "eval_loss": 0.1366, "eval_perplexity": None,
               "tokens_per_second": 210.4, "steps": 40, "wall_seconds": 549.8,
               "peak_memory_mb": 9410.1, "rewards": {"eval": {"accuracy": 1.0, "margin": 2.2552}}}  # fmt: skip
    line = summary_line(RunResult(Path("runs/dpo"), metrics))
    assert "eval_loss 0.1366, held-out reward accuracy 1.000 (margin 2.255)" in line
    assert "ppl" not in line


def test_a_domain_template_is_a_preference_type_whose_pairs_carry_its_prompt(
    tmp_path: Path,
) -> None:
    from ft_plugin.data import build_training_data
    from ft_plugin.data.templates import load_template

    rows = [{"ask": f"发烧{i}天怎么办？", "chosen": "多喝水，持续不退请就医。", "rejected": f"不知道{i}。"}
            for i in range(6)] + [{"ask": "No answers here."}]  # fmt: skip
    data = write_rows(tmp_path / "pairs.jsonl", rows)
    loaded = load_recipe(str(write_recipe(tmp_path, f"""adapter: lora
rl: dpo
datasets:
  - path: {data}
    type: medical
    field_instruction: ask
chat_template: chatml
""")))  # fmt: skip
    data = build_training_data(loaded.recipe, tiny_tokenizer())
    first = data.train[0]
    system = load_template("medical").system_prompt.strip()
    assert first["prompt"].startswith(f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n")
    assert first["prompt"].endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert first["chosen"] == "多喝水，持续不退请就医。<|im_end|>" and first["rejected"].startswith(
        "不知道"
    )
    assert len(data.train) == 6 and data.dropped == {"missing_or_empty_field": 1}


def test_kto_does_not_read_a_domain_template(tmp_path: Path) -> None:
    path = write_recipe(
        tmp_path, "adapter: lora\nrl: kto\ndatasets:\n  - path: p.jsonl\n    type: medical\n"
    )
    assert "medical is not a KTO dataset type" in one_line_error(path)
