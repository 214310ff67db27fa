"""`ft-plugin export`: merged folders, GGUF files and Ollama Modelfiles that answer as the
run does, checked through plain transformers and llama.cpp itself; refusals in one line."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from helpers import require, tiny_recipe, write_rows
from hub_server import hub_fixture
from tiny import CHATML, save_tiny_model_with_embedded_tokenizer, tiny_tokenizer
from transformers import AutoTokenizer

from ft_plugin.errors import UserError
from ft_plugin.export import export_run, llama_cpp, ollama
from ft_plugin.export.check import ExportMismatch, Observed, Reference, compare
from ft_plugin.export.stops import end_of_turn_tokens

LLAMA_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{{ '<|start_header_id|>' + m['role'] + "
    "'<|end_header_id|>\\n\\n' + m['content'] + '<|eot_id|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)


def go_render(template: str, system: str, prompt: str, response: str | None = None) -> str:
    """Ollama's rendering of the one-turn templates `ollama.go_template` writes: the
    ``if .System`` / ``else`` / ``end`` branch, then the three values; for the answer to
    come (no ``response``), the template is cut after ``.Response``, as Ollama's
    template.go does for the last message (the test's own reading, not the exporter's)."""
    if response is None:
        template, response = template.split("{{ .Response }}")[0], ""
    branch = re.compile(r"\{\{ if \.System \}\}(.*?)\{\{ else \}\}(.*?)\{\{ end \}\}", re.S)
    text = branch.sub(lambda m: m.group(1) if system else m.group(2), template)
    for name, value in (("System", system), ("Prompt", prompt), ("Response", response)):
        text = text.replace("{{ ." + name + " }}", value)
    return text


def tokenizer_with(template: str, specials: list[str] | None = None):  # noqa: ANN201
    tokenizer = tiny_tokenizer()
    if specials:
        tokenizer.add_special_tokens({"additional_special_tokens": specials})
    tokenizer.chat_template = template
    return tokenizer


def test_end_of_turn_tokens_come_from_the_chat_template() -> None:
    assert end_of_turn_tokens(tokenizer_with(CHATML)) == ["<|im_end|>"]
    llama3 = tokenizer_with(
        LLAMA_TEMPLATE, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    )
    # the template's end of turn first, then EOS: both must stop an exported model
    assert end_of_turn_tokens(llama3) == ["<|eot_id|>", "<|im_end|>"]


@pytest.mark.parametrize("template", [CHATML, LLAMA_TEMPLATE])
@pytest.mark.parametrize("system", ["", "You answer medical questions."])
def test_the_ollama_template_writes_the_prompt_the_run_was_trained_on(
    template: str, system: str
) -> None:
    tokenizer = tokenizer_with(template, ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"])
    messages = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": "What lowers blood pressure?"})
    parts = ollama.chat_parts(tokenizer)
    expected = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert go_render(ollama.go_template(parts), system, "What lowers blood pressure?") == expected
    answered = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": "Less salt."}], tokenize=False
    )
    assert (
        go_render(ollama.go_template(parts), system, "What lowers blood pressure?", "Less salt.")
        == answered
    )


def test_an_architecture_gguf_export_does_not_cover_is_refused_by_name(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(
        UserError, match=r"^GPT2LMHeadModel: GGUF export covers LlamaForCausalLM.*--format merged"
    ):
        llama_cpp.architecture(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"architectures": ["Gemma3ForCausalLM"]}))
    with pytest.raises(UserError, match="^Gemma3ForCausalLM: GGUF export covers"):
        llama_cpp.architecture(tmp_path)


def test_a_missing_converter_says_where_to_get_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(llama_cpp.LLAMA_CPP_ENV, raising=False)
    monkeypatch.setattr(llama_cpp.sys, "prefix", str(tmp_path))
    with pytest.raises(
        UserError, match="set LLAMA_CPP_DIR to a llama.cpp checkout .* `make llama-cpp`"
    ):
        llama_cpp.converter_dir()
    with pytest.raises(UserError, match=f"^{tmp_path}: no convert_hf_to_gguf.py there"):
        llama_cpp.converter_dir(tmp_path)


def test_the_converter_runs_without_the_users_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = tmp_path / "llama.cpp"
    tree.mkdir()
    seen = tmp_path / "env.json"
    (tree / llama_cpp.CONVERTER).write_text(
        f"import json, os\njson.dump(dict(os.environ), open({str(seen)!r}, 'w'))\n"
    )
    monkeypatch.setenv("HF_TOKEN", "hf_owner_secret_token")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "aws-secret-value")
    llama_cpp.convert(tmp_path, tmp_path / "out.gguf", "f16", llama_cpp.converter_dir(tree))
    env = json.loads(seen.read_text())
    assert "HF_TOKEN" not in env and "AWS_SECRET_ACCESS_KEY" not in env
    assert "hf_owner_secret_token" not in json.dumps(env)


def test_a_failing_converter_is_one_line_naming_its_last_words(tmp_path: Path) -> None:
    (tmp_path / llama_cpp.CONVERTER).write_text(
        "import sys\nsys.exit('Model Foo is not supported')\n"
    )
    with pytest.raises(
        UserError, match="llama.cpp's converter on .* failed: Model Foo is not supported"
    ):
        llama_cpp.convert(tmp_path, tmp_path / "out.gguf", "f16", tmp_path)


def reference() -> Reference:
    prompts = [[{"role": "user", "content": f"q{i}"}] for i in range(3)]
    return Reference(prompts, ["q"] * 3, [[1, 2, 3]] * 3, [[0, 1, 1]] * 3, ["a", "b", "c"],
                     [(2.0, 2)] * 3, ["a", "b", "c"])  # fmt: skip


def test_an_answer_is_compared_up_to_the_runs_first_near_tie() -> None:
    run = Reference([[{"role": "user", "content": "q"}]], ["q"], [[1, 2]], [[0, 1]],
                    ["The dose is 5 mg daily."], [(1.0, 1)], ["The dose is"])  # fmt: skip
    assert compare("f32", run, Observed(["The dose is 50 mg."], [(1.0, 1)])).agreeing == 1
    with pytest.raises(ExportMismatch, match="0/1 greedy answers"):
        compare("f32", run, Observed(["A dose of 5 mg."], [(1.0, 1)]))


def test_an_identical_answer_agrees_even_when_its_settled_part_ends_inside_a_character() -> None:
    # Measured on the embedded model: a 32-token answer cut inside a Chinese character ends
    # in U+FFFD, as does the settled part cut earlier; the identical export answer agrees.
    run = Reference([[{"role": "user", "content": "q"}]], ["q"], [[1, 2]], [[0, 1]],
                    ["请留下一个\ufffd"], [(1.0, 1)], ["请"])  # fmt: skip
    assert compare("f32", run, Observed(["请留下一个\ufffd"], [(1.0, 1)])).agreeing == 1


def test_compare_names_the_weights_when_perplexity_moves_past_the_tolerance() -> None:
    run = reference()
    assert compare("q4_k_m", run, Observed(["a", "x", "c"], [(2.1, 2)] * 3)).same_answers == 2
    with pytest.raises(
        ExportMismatch, match="f16 export's weights do not match the run: 3/3 .*tolerance ±0.5%"
    ):
        compare("f16", run, Observed(["a", "b", "c"], [(2.2, 2)] * 3))
    with pytest.raises(
        ExportMismatch, match="2/3 greedy answers .* first differing answer: run 'b' vs export 'x'"
    ):
        compare("merged", run, Observed(["a", "x", "c"], [(2.0, 2)] * 3))


def test_an_answer_that_differs_where_the_tokenizer_differs_names_the_tokenizer() -> None:
    seen = Observed(
        ["a", "x", "c"], [(2.0, 2)] * 3, {1: "'？\\n\\n': run ['Ċ', 'Ċ'], llama.cpp ['ĊĊ']"}
    )
    with pytest.raises(
        ExportMismatch,
        match="tokenizer differs .* splits 1 of 3 prompts otherwise .*ĊĊ.*answers that differ on such prompts: 1; pass --allow-tokenizer-difference",
    ):
        compare("f16", reference(), seen)
    kept = compare("f16", reference(), seen, allow_tokenizer_difference=True)
    assert (kept.same_answers, kept.prompts_tokenized_otherwise) == (2, 1)


# End to end: a tiny random Llama with the embedded model's real tokenizer (llama.cpp's
# converter refuses a tokenizer it does not know), trained for a few steps, exported.
ENGLISH = [{"instruction": f"What is {a} plus {b}?", "output": f"{a} plus {b} is {a + b}."}
           for a in range(6) for b in range(4)]  # fmt: skip


@pytest.fixture(scope="module")
def smol_base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model_with_embedded_tokenizer(tmp_path_factory.mktemp("smol-base"))


def trained(
    tmp_path: Path, base: Path, rows: list[dict], adapter: str = "lora", **keys: object
) -> Path:
    from ft_plugin.train import train

    loaded = tiny_recipe(tmp_path, adapter, extra="val_set_size: 4\n", base_model=str(base),
                         **{"datasets.0.path": str(write_rows(tmp_path / "qa.jsonl", rows)), **keys})  # fmt: skip
    return Path(train(loaded, str(tmp_path / "run")).run_dir)


@pytest.fixture(scope="module")
def lora_run(smol_base: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    require("llama_cpp", "`make llama-cpp` builds llama-cpp-python")
    return trained(
        tmp_path_factory.mktemp("lora"), smol_base, ENGLISH, **{"datasets.0.type": "medical"}
    )


@pytest.fixture(scope="module")
def f32_export(lora_run: Path):  # noqa: ANN201
    """The LoRA run exported once as an f32 GGUF (the export's result)."""
    return export_run(lora_run, "gguf", quant="f32")


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_a_gguf_export_answers_as_the_run_in_llama_cpp_itself(lora_run: Path, f32_export) -> None:  # noqa: ANN001
    from gguf import GGUFReader

    result = f32_export
    gguf = result.folder / "run-f32.gguf"
    assert result.files == ["run-f32.gguf", "export.json"] and gguf.is_file()
    assert result.check.agreeing == result.check.answered == 4
    assert (
        abs(result.check.perplexity_change) < 1e-4 and result.check.prompts_tokenized_otherwise == 0
    )
    fields = GGUFReader(gguf).fields
    template = fields["tokenizer.chat_template"]
    assert (
        bytes(template.parts[template.data[0]]).decode()
        == AutoTokenizer.from_pretrained(lora_run).chat_template
    )
    record = json.loads((result.folder / "export.json").read_text())["run-f32.gguf"]
    assert record["check"]["agreeing"] == 4 and record["quant"] == "f32"
    assert not list(result.folder.glob(".staging-*")), "the staging folder is left behind"


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_transformers_reads_the_same_weights_from_the_gguf_as_from_the_merged_folder(
    lora_run: Path,
    f32_export,  # noqa: ANN001
) -> None:
    """A second reader, independent of llama.cpp: transformers' GGUF loader."""
    from transformers import AutoModelForCausalLM

    merged = export_run(lora_run, "merged")
    folder = merged.folder / "merged"
    assert (f32_export.folder / "run-f32.gguf").is_file()
    ids = torch.tensor([AutoTokenizer.from_pretrained(folder)("What is 2 plus 3?")["input_ids"]])
    with torch.inference_mode():
        plain = AutoModelForCausalLM.from_pretrained(folder).eval()(ids).logits
        read = (
            AutoModelForCausalLM.from_pretrained(merged.folder, gguf_file="run-f32.gguf")
            .eval()(ids)
            .logits
        )
    assert torch.allclose(plain, read, atol=1e-4)


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_the_merged_folder_loads_in_plain_transformers_and_stops_where_the_run_stops(
    lora_run: Path,
) -> None:
    from transformers import AutoModelForCausalLM, GenerationConfig

    result = export_run(lora_run, "merged")
    folder = result.folder / "merged"
    assert result.check.agreeing == 4 and abs(result.check.perplexity_change) < 1e-5
    im_end = AutoTokenizer.from_pretrained(folder).convert_tokens_to_ids("<|im_end|>")
    assert GenerationConfig.from_pretrained(folder).eos_token_id == im_end
    assert (folder / "chat_template.jinja").is_file() and (folder / "model.safetensors").is_file()
    assert AutoModelForCausalLM.from_pretrained(folder).config.architectures == ["LlamaForCausalLM"]


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_the_ollama_export_writes_a_modelfile_for_its_gguf(lora_run: Path) -> None:
    from ft_plugin.data.templates import load_template

    result = export_run(lora_run, "ollama", quant="q8_0")
    text = (result.folder / "Modelfile").read_text()
    assert text.startswith('FROM ./run-q8_0.gguf\nTEMPLATE """{{ if .System }}<|im_start|>system\n')
    assert 'PARAMETER stop "<|im_end|>"' in text
    assert f'SYSTEM """{load_template("medical").system_prompt.strip()}"""' in text
    assert result.command == "ollama create run -f Modelfile"
    tokenizer = AutoTokenizer.from_pretrained(lora_run)
    template = re.search(r'TEMPLATE """(.*?)"""', text, re.S).group(1)
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    assert go_render(template, "Be brief.", "Hi?") == tokenizer.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_the_adapter_travels_alone_as_llama_cpps_lora_for_ollamas_adapter(lora_run: Path) -> None:
    result = export_run(lora_run, "ollama", quant="f32", adapter_gguf=True)
    assert result.files == ["run-base-f32.gguf", "run-adapter-f16.gguf", "Modelfile", "export.json"]
    # checked through llama.cpp with the adapter applied at load, as Ollama does
    assert result.check.agreeing == result.check.answered == 4
    assert abs(result.check.perplexity_change) < 0.005  # the adapter's deltas are f16
    text = (result.folder / "Modelfile").read_text()
    assert text.startswith("FROM ./run-base-f32.gguf\nADAPTER ./run-adapter-f16.gguf\nTEMPLATE")
    assert str(lora_run.parent) not in (result.folder / "run-adapter-f16.gguf").read_bytes().decode(
        "latin-1"
    )
    assert (result.folder / "run-adapter-f16.gguf").stat().st_size < (
        result.folder / "run-base-f32.gguf"
    ).stat().st_size / 5


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_a_gguf_with_another_template_or_stop_token_is_refused_by_name(
    lora_run: Path,
    f32_export,  # noqa: ANN001
) -> None:
    from ft_plugin.export.gguf_check import check_gguf
    from ft_plugin.export.run import _run_reference

    gguf = f32_export.folder / "run-f32.gguf"
    run = _run_reference(lora_run, 1, 4)
    tokenizer = AutoTokenizer.from_pretrained(lora_run)
    tokenizer.chat_template = CHATML
    with pytest.raises(
        ExportMismatch,
        match="run-f32.gguf: the chat template differs: the file's tokenizer.chat_template holds another one",
    ):
        check_gguf(gguf, tokenizer, run, 4)
    tokenizer = AutoTokenizer.from_pretrained(lora_run)
    tokenizer.eos_token = "<|im_start|>"  # a token llama.cpp does not stop at
    with pytest.raises(
        ExportMismatch,
        match="the stop token differs: <|im_start|> ends the run's answers but does not end generation in llama.cpp",
    ):
        check_gguf(gguf, tokenizer, run, 4)


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_llama_cpps_own_split_of_chinese_text_is_named_and_kept_only_when_allowed(
    smol_base: Path, tmp_path: Path
) -> None:
    # Measured: llama.cpp's SmolLM2 pre-tokenizer joins "？\n\n" into 'ĊĊ' where
    # transformers splits 'Ċ', 'Ċ': the GGUF then sees other tokens than training did.
    require("llama_cpp", "`make llama-cpp` builds llama-cpp-python")
    rows = [{"instruction": f"发烧怎么办？\n\n{i + 2}岁儿童，体温38.{i}度", "output": "多喝水，注意休息。"}
            for i in range(10)]  # fmt: skip
    run = trained(tmp_path, smol_base, rows)
    with pytest.raises(
        ExportMismatch,
        match=r"tokenizer differs .*splits 4 of 4 prompts otherwise .*run \['Ċ', 'Ċ'\], llama.cpp \['ĊĊ'\]",
    ):
        export_run(run, "gguf", quant="f32")
    assert not list((run / "export").glob("*.gguf")), "a refused export left a file"
    kept = export_run(run, "gguf", quant="f32", allow_tokenizer_difference=True)
    assert kept.check.prompts_tokenized_otherwise == 4 and (kept.folder / "run-f32.gguf").is_file()


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_export_refuses_in_one_line(tmp_path: Path, smol_base: Path) -> None:
    from helpers import cli

    run = trained(tmp_path, smol_base, ENGLISH, adapter="bottleneck")
    done = cli("export", str(run), "--format", "merged")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "cannot be merged" in done.stderr
    done = cli("export", str(run), "--format", "gguf", "--adapter-gguf")
    assert (
        done.returncode == 2
        and "llama.cpp has no adapter of the bottleneck method's kind" in done.stderr
    )
    done = cli("export", str(tmp_path), "--format", "gguf")
    assert done.returncode == 2 and "not a finished run" in done.stderr


@pytest.mark.e2e
def test_the_embedded_medical_run_exports_for_ollama_from_the_command_line(tmp_path: Path) -> None:
    from helpers import cli

    require("llama_cpp", "`make llama-cpp` builds llama-cpp-python")
    run = tmp_path / "medical"
    trained = cli("train", "medical-lora", "--output-dir", str(run), "--set", "max_steps=2",
                  "--set", "eval_steps=2")  # fmt: skip
    assert trained.returncode == 0, trained.stderr[-2000:]
    refused = cli("export", str(run), "--format", "ollama", "--quant", "q8_0")
    assert refused.returncode == 2 and "tokenizer differs" in refused.stderr
    assert "llama.cpp ['ĊĊ']" in refused.stderr and not list(run.glob("export/*.gguf"))
    done = cli(
        "export", str(run), "--format", "ollama", "--quant", "q8_0", "--allow-tokenizer-difference"
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"wrote {run / 'export' / 'medical-q8_0.gguf'}" in done.stdout
    assert "next: cd" in done.stdout and "ollama create medical -f Modelfile" in done.stdout
    record = json.loads((run / "export" / "export.json").read_text())["medical-q8_0.gguf"]
    assert abs(record["check"]["perplexity_change"]) < 0.02


hub = hub_fixture()


@pytest.mark.hub
def test_push_with_gguf_uploads_the_checked_files_and_lists_them_in_the_card(
    hub: object, lora_run: Path
) -> None:
    from huggingface_hub import HfApi, ModelCard

    from ft_plugin.hub.publish import push_run

    if not (lora_run / "export" / "run-q8_0.gguf").is_file():
        export_run(lora_run, "ollama", quant="q8_0")
    push_run(lora_run, "test-user/tiny-gguf", merged=True, with_gguf=True, private=False)
    files = set(HfApi().list_repo_files("test-user/tiny-gguf"))
    assert {
        "run-q8_0.gguf",
        "Modelfile",
        "model.safetensors",
    } <= files and "export.json" not in files
    card = ModelCard.load("test-user/tiny-gguf").text
    assert "## Deployment files" in card and "| `run-q8_0.gguf` | q8_0 |" in card
    assert "ollama create NAME -f Modelfile" in card and "a base model not on the Hub" in card
    assert "What is" not in card, "the card shows the held-out prompts the check compared"


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_push_with_gguf_before_any_export_says_what_to_run(tmp_path: Path, lora_run: Path) -> None:
    from ft_plugin.hub.publish import build_bundle

    empty = tmp_path / "run"
    shutil.copytree(lora_run, empty, ignore=shutil.ignore_patterns("export"))
    with pytest.raises(
        UserError,
        match=r"--with-gguf: .*export holds no GGUF export; run `ft-plugin export .* --format gguf` first",
    ):
        build_bundle(empty, "me/x", tmp_path / "staging", merged=True, with_gguf=True)


@pytest.mark.slow  # converts tiny models: seconds each
@pytest.mark.parametrize("arch", ["mistral", "qwen3"])
def test_llama_cpp_reads_each_covered_architecture_as_transformers_does(
    arch: str, tmp_path: Path
) -> None:
    """The converter and llama.cpp on each architecture GGUF export covers: the same
    next-token logits as transformers, from the same token ids."""
    import numpy as np
    from transformers import AutoModelForCausalLM

    llama = require("llama_cpp", "`make llama-cpp` builds llama-cpp-python")
    folder = save_tiny_model_with_embedded_tokenizer(tmp_path / arch, arch=arch)
    assert llama_cpp.architecture(folder) in llama_cpp.ARCHITECTURES
    gguf = llama_cpp.convert(folder, tmp_path / f"{arch}.gguf", "f32", llama_cpp.converter_dir())
    ids = AutoTokenizer.from_pretrained(folder)("What lowers blood pressure? Less salt.")[
        "input_ids"
    ]
    with torch.inference_mode():
        expected = (
            AutoModelForCausalLM.from_pretrained(folder)
            .eval()(torch.tensor([ids]))
            .logits[0]
            .numpy()
        )
    model = llama.Llama(model_path=str(gguf), n_ctx=64, logits_all=True, verbose=False)
    model.eval(ids)
    got = np.asarray(model.scores[: len(ids)])
    model.close()
    assert np.abs(got - expected).max() < 1e-3 * max(1.0, float(np.abs(expected).max()))


@pytest.mark.slow  # trains a tiny run and exports it: tens of seconds
def test_a_full_fine_tune_exports_its_own_weights(tmp_path: Path, smol_base: Path) -> None:
    run = trained(tmp_path, smol_base, ENGLISH, adapter="full")
    result = export_run(run, "merged")
    assert result.check.agreeing == 4 and abs(result.check.perplexity_change) < 1e-5
    assert (result.folder / "merged" / "model.safetensors").read_bytes() == (
        run / "model.safetensors"
    ).read_bytes()


@pytest.mark.slow  # trains a tiny QLoRA run and exports it: tens of seconds
def test_a_qlora_run_exports_as_its_adapter_over_the_full_precision_base(
    tmp_path: Path, smol_base: Path
) -> None:
    # merging dequantizes (ft-plugin merge); the check compares with what the merge means,
    # not with the 4-bit run, which differs by the quantization error
    require("bitsandbytes", "the qlora extra")
    run = trained(tmp_path, smol_base, ENGLISH, adapter="qlora")
    result = export_run(run, "merged")
    assert result.check.agreeing == 4 and abs(result.check.perplexity_change) < 1e-3
