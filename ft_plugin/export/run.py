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


@dataclass
class ExportResult:
    """The files written (in ``folder``) and how the export compared with the run."""

    folder: Path
    files: list[str]
    check: check.CheckResult
    command: str | None = None  # what to run next (Ollama's `create`)


def export_run(run_dir: Path, fmt: str, *, quant: str = "f16", output: Path | None = None,
               llama_cpp_dir: str | None = None, check_rows: int = CHECK_ROWS,
               max_new_tokens: int = 32, allow_tokenizer_difference: bool = False) -> ExportResult:  # fmt: skip
    """Export ``run_dir`` as ``fmt`` (``FORMATS``) into ``output`` (default RUN_DIR/export).

    Example (usage, not run as a doctest: it needs a trained run and llama.cpp)::

        export_run(Path("runs/medical-lora"), "gguf", quant="q4_k_m").files
        # ['medical-lora-q4_k_m.gguf', 'export.json']
    """
    if fmt not in FORMATS:
        raise UserError(f"--format {fmt}: give one of {', '.join(FORMATS)}")
    if quant not in QUANTS:
        raise UserError(f"--quant {quant}: give one of {', '.join(QUANTS)}")
    if not RunDir(run_dir).is_finished():
        raise UserError(f"{run_dir}: not a finished run (no recipe.yaml and metrics.json)")
    tree = llama_cpp.converter_dir(llama_cpp_dir) if fmt != "merged" else None
    output = output or run_dir / "export"
    output.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=output))
    try:
        run = _run_reference(run_dir, check_rows, max_new_tokens)
        if fmt == "merged":
            result = _export_merged(run_dir, staging, run, max_new_tokens)
        else:
            result = _export_gguf(run_dir, staging, run, fmt, quant, tree, max_new_tokens,
                                  allow_tokenizer_difference)  # fmt: skip
        return _publish(staging, output, result, fmt, quant)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run_reference(run_dir: Path, rows: int, max_new_tokens: int) -> check.Reference:
    from ft_plugin.evaluate.targets import load_target

    target = load_target(str(run_dir), with_baseline=False)
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


def _export_gguf(run_dir: Path, staging: Path, run: check.Reference, fmt: str, quant: str,
                 tree: Path, max_new_tokens: int, allow_tokenizer_difference: bool) -> ExportResult:  # fmt: skip
    from .gguf_check import check_gguf

    merged = staging / ".merged"
    tokenizer = write_merged(run_dir, merged)
    llama_cpp.architecture(merged)
    name = f"{run_dir.resolve().name}-{quant}.gguf"
    if quant in llama_cpp.CONVERTER_TYPES:
        llama_cpp.convert(merged, staging / name, quant, tree)
    else:
        f16 = llama_cpp.convert(merged, staging / ".f16.gguf", "f16", tree)
        llama_cpp.quantize(f16, staging / name, quant)
        f16.unlink()
    seen = check_gguf(staging / name, tokenizer, run, max_new_tokens)
    result = check.compare(quant, run, seen, allow_tokenizer_difference=allow_tokenizer_difference)
    files, command = [name], None
    if fmt == "ollama":
        system = _system_prompt(run_dir)
        text = ollama.modelfile(name, ollama.chat_parts(tokenizer), end_of_turn_tokens(tokenizer),
                                system)  # fmt: skip
        (staging / "Modelfile").write_text(text, encoding="utf-8")
        files.append("Modelfile")
        command = f"ollama create {run_dir.resolve().name} -f Modelfile"
    shutil.rmtree(merged)
    return ExportResult(staging, files, result, command)


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
