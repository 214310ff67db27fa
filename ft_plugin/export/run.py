"""One export of a run: written into a staging folder, checked by loading it back, then
moved into place (a failed check leaves nothing behind)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError
from ft_plugin.rundir import RunDir

from . import check, llama_cpp, ollama
from .merged import write_merged
from .stops import end_of_turn_tokens

FORMATS = ("merged", "gguf", "ollama")
QUANTS = (*llama_cpp.CONVERTER_TYPES, *llama_cpp.QUANTIZER_TYPES)
RECORD = "export.json"  # what was exported, how, and how it compared with the run
CHECK_ROWS = 4  # held-out prompts answered by both the run and the export
SCORED_ROWS = 32  # held-out rows scored (perplexity) and tokenized by both


@dataclass(frozen=True)
class ExportOptions:
    """How to export (the `ft-plugin export` flags)."""

    quant: str = "f16"  # GGUF weights: one of QUANTS
    output: Path | None = None  # default RUN_DIR/export
    llama_cpp_dir: str | None = None  # a llama.cpp checkout; default: see llama_cpp.converter_dir
    check_rows: int = CHECK_ROWS  # held-out prompts answered by the run and the export
    max_new_tokens: int = 32  # of each compared answer
    allow_tokenizer_difference: bool = False  # keep a GGUF whose tokenizer splits otherwise
    adapter_gguf: bool = False  # base GGUF + llama.cpp LoRA GGUF instead of merged weights


@dataclass
class ExportResult:
    """The files written (in ``folder``) and how the export compared with the run."""

    folder: Path
    files: list[str]
    check: check.CheckResult
    command: str | None = None  # what to run next (Ollama's `create`)


def export_run(run_dir: Path, fmt: str, **options: Any) -> ExportResult:
    """Export ``run_dir`` as ``fmt`` (``FORMATS``); ``options`` are :class:`ExportOptions`.

    Example (usage, not run as a doctest: it needs a trained run and llama.cpp)::

        export_run(Path("runs/medical-lora"), "gguf", quant="q4_k_m").files
        # ['medical-lora-q4_k_m.gguf', 'export.json']
    """
    settings = ExportOptions(**options)
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: give one of {', '.join(FORMATS)}")
    if settings.quant not in QUANTS:
        raise UserError(f"--quant {settings.quant}: give one of {', '.join(QUANTS)}")
    if not RunDir(run_dir).is_finished():
        raise UserError(f"{run_dir}: not a finished run (no recipe.yaml and metrics.json)")
    if settings.adapter_gguf:
        _check_adapter_gguf(run_dir, fmt)
    tree = llama_cpp.converter_dir(settings.llama_cpp_dir) if fmt != "merged" else None
    output = settings.output or run_dir / "export"
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output))
    try:
        run = _run_reference(run_dir, settings.check_rows, settings.max_new_tokens)
        if fmt == "merged":
            result = _export_merged(run_dir, staging, run, settings.max_new_tokens)
        else:
            result = _export_gguf(run_dir, staging, run, fmt, tree, settings)
        return _publish(staging, output, result, fmt, settings.quant)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _check_adapter_gguf(run_dir: Path, fmt: str) -> None:
    from ft_plugin import registry

    adapter = RunDir(run_dir).load_recipe().recipe.adapter
    if fmt == "merged":
        raise UserError(
            "--adapter-gguf: give --format gguf or ollama (merged folds the adapter in)"
        )
    if not registry.load_method(adapter).llama_cpp_adapter:
        raise UserError(f"--adapter-gguf: llama.cpp has no adapter of the {adapter} method's kind; "
                        "export without --adapter-gguf (merged into the weights)")  # fmt: skip


def _run_reference(run_dir: Path, rows: int, max_new_tokens: int) -> check.Reference:
    from ft_plugin.evaluate.targets import load_target

    # A QLoRA run is compared as its adapter over the full-precision base: what merging
    # (and so every export) gives; the 4-bit run differs from it by the quantization error.
    target = load_target(str(run_dir), with_baseline=False, quantized=False)
    examples = [e for e in _check_examples(target, max(rows, SCORED_ROWS)) if "prompt" in e]
    if not examples:
        raise UserError(f"{run_dir}: its rows have no prompts to compare answers on")
    return check.reference(target.model, target.tokenizer, examples,
                           sequence_len=target.recipe.sequence_len, answers=rows,
                           max_new_tokens=max_new_tokens)  # fmt: skip


def _check_examples(target: Any, rows: int) -> list[dict[str, Any]]:
    """The run's held-out rows (a seeded sample of ``rows``), else its first training rows."""
    from ft_plugin.data import build_training_data
    from ft_plugin.evaluate.dataset import EvalSettings, evaluation_data

    recipe = target.recipe
    if recipe.val_set_size or recipe.test_datasets:
        return evaluation_data(target, EvalSettings(max_samples=rows)).examples
    train = build_training_data(recipe, target.tokenizer).train
    return list(train.select(range(min(rows, len(train)))))


def _export_merged(
    run_dir: Path, staging: Path, run: check.Reference, max_new_tokens: int
) -> ExportResult:
    write_merged(run_dir, staging / "merged")
    result = check.check_merged(staging / "merged", run, max_new_tokens)
    return ExportResult(staging, ["merged"], result)


def _export_gguf(run_dir: Path, staging: Path, run: check.Reference, fmt: str, tree: Path,
                 settings: ExportOptions) -> ExportResult:  # fmt: skip
    from .gguf_check import check_gguf

    quant, stem = settings.quant, run_dir.resolve().name
    if settings.adapter_gguf:
        name, adapter, tokenizer = _adapter_ggufs(run_dir, staging, quant, tree)
    else:
        merged, name, adapter = staging / ".merged", gguf_name(run_dir, quant), None
        tokenizer = write_merged(run_dir, merged)
        _gguf_of(merged, staging / name, quant, tree)
        shutil.rmtree(merged)
    seen = check_gguf(staging / name, tokenizer, run, settings.max_new_tokens,
                      adapter=staging / adapter if adapter else None)  # fmt: skip
    result = check.compare(quant, run, seen,
                           allow_tokenizer_difference=settings.allow_tokenizer_difference)  # fmt: skip
    files, command = [name, *([adapter] if adapter else [])], None
    if fmt == "ollama":
        text = ollama.modelfile(name, ollama.chat_parts(tokenizer), end_of_turn_tokens(tokenizer),
                                _system_prompt(run_dir), adapter)  # fmt: skip
        (staging / "Modelfile").write_text(text, encoding="utf-8")
        files.append("Modelfile")
        command = f"ollama create {stem} -f Modelfile"
    return ExportResult(staging, files, result, command)


def gguf_name(run_dir: Path, quant: str) -> str:
    """The file name of ``run_dir``'s merged GGUF of ``quant`` in its export folder.

    Example:
        >>> gguf_name(Path("runs/medical-lora"), "q4_k_m")
        'medical-lora-q4_k_m.gguf'
    """
    return f"{run_dir.resolve().name}-{quant}.gguf"


def _gguf_of(folder: Path, target: Path, quant: str, tree: Path) -> Path:
    """``folder`` (a full model) as a GGUF of ``quant``: converted, then quantized by
    llama.cpp where the converter does not write that type."""
    llama_cpp.architecture(folder)
    if quant in llama_cpp.CONVERTER_TYPES:
        return llama_cpp.convert(folder, target, quant, tree)
    f16 = llama_cpp.convert(folder, target.with_name(".f16.gguf"), "f16", tree)
    llama_cpp.quantize(f16, target, quant)
    f16.unlink()
    return target


def _adapter_ggufs(run_dir: Path, staging: Path, quant: str, tree: Path) -> tuple[str, str, Any]:
    """The base as a GGUF (with the run's tokenizer and chat template) and the adapter as
    llama.cpp's LoRA GGUF, for Ollama's ``FROM`` + ``ADAPTER``."""
    from ft_plugin import models

    recipe = RunDir(run_dir).load_recipe().recipe
    resolved = models.resolve_base_model(recipe.base_model, recipe.base_model_revision)
    base = staging / ".base"
    base.mkdir()
    for path in Path(resolved.path).iterdir():  # the base's weights, unchanged
        if path.suffix in (".safetensors", ".json") and not path.name.startswith("tokenizer"):
            (base / path.name).symlink_to(path.resolve())
    tokenizer = models.load_tokenizer(recipe, resolved, quiet=True)
    tokenizer.save_pretrained(base)
    stem = run_dir.resolve().name
    name, adapter = f"{stem}-base-{quant}.gguf", f"{stem}-adapter-f16.gguf"
    _gguf_of(base, staging / name, quant, tree)
    lora = _adapter_folder(
        run_dir, staging / ".adapter", resolved.hub_id or Path(resolved.path).name
    )
    llama_cpp.convert_adapter(lora, base, staging / adapter, tree)
    shutil.rmtree(base)
    shutil.rmtree(lora)
    return name, adapter, tokenizer


def _adapter_folder(run_dir: Path, folder: Path, base_name: str) -> Path:
    """The run's adapter with its base named by Hub id (or folder name): the converter
    writes that name into the file, which must not carry this machine's paths."""
    from ft_plugin.rundir import ADAPTER_CONFIG, ADAPTER_WEIGHTS

    folder.mkdir()
    config = json.loads((run_dir / ADAPTER_CONFIG).read_text(encoding="utf-8"))
    config["base_model_name_or_path"] = base_name
    (folder / ADAPTER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")
    (folder / ADAPTER_WEIGHTS).symlink_to((run_dir / ADAPTER_WEIGHTS).resolve())
    return folder


def _system_prompt(run_dir: Path) -> str | None:
    """The domain template's system prompt, which training put in every row."""
    from ft_plugin.data.formats import CONVERTERS
    from ft_plugin.data.templates import load_template

    recipe = RunDir(run_dir).load_recipe().recipe
    kind = recipe.datasets[0].type if recipe.datasets else None
    if not kind or kind in CONVERTERS or "." in kind:
        return None
    return load_template(kind).system_prompt or None


def _publish(
    staging: Path, output: Path, result: ExportResult, fmt: str, quant: str
) -> ExportResult:
    for name in result.files:
        target = output / name
        if target.is_dir():
            shutil.rmtree(target)
        (staging / name).replace(target)
        if target.is_dir():  # staged under mkdtemp, which is private to its owner
            target.chmod(0o755)
    records = exported_files(output)
    records[result.files[0]] = {"format": fmt, "quant": None if fmt == "merged" else quant,
                                "files": result.files, "check": result.check.as_dict(),
                                "command": result.command}  # fmt: skip
    (output / RECORD).write_text(
        json.dumps(records, indent=2, ensure_ascii=False), encoding="utf-8"
    )
    return ExportResult(output, [*result.files, RECORD], result.check, result.command)


def exported_files(output: Path) -> dict[str, Any]:
    """The exports recorded in ``output`` (``export.json``): main file → format, quant,
    files and how it compared with the run."""
    path = output / RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
