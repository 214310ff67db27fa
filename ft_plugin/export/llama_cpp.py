"""llama.cpp's own tools, driven: ``convert_hf_to_gguf.py`` writes the GGUF from a merged
folder (tensor names, tokenizer, pre-tokenizer, chat template), llama.cpp's quantizer
(through llama-cpp-python) makes the k-quants the converter does not write.

The converter is a script tree, not a package: it is found in ``--llama-cpp DIR``, then
``$LLAMA_CPP_DIR`` (a llama.cpp checkout), then ``<venv>/share/ft-plugin/llama.cpp``
(what ``make llama-cpp`` puts there, from the llama-cpp-python release it builds).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from ft_plugin.errors import UserError
from ft_plugin.utils.environment import child_environment

CONVERTER = "convert_hf_to_gguf.py"
LLAMA_CPP_ENV = "LLAMA_CPP_DIR"
# The architectures the GGUF export is checked on here (tests/test_export.py: llama.cpp's
# logits equal transformers'). Qwen2 and Gemma 3 are left out: on tiny models the converter
# refused Qwen2's tokenizer path and llama.cpp's Gemma 3 logits differed by 0.07, so an
# export of them would not be known to answer as the run does. `--format merged` takes any.
ARCHITECTURES = ("LlamaForCausalLM", "MistralForCausalLM", "Qwen3ForCausalLM")
CONVERTER_TYPES = ("f32", "f16", "bf16", "q8_0")  # what convert_hf_to_gguf.py writes itself
QUANTIZER_TYPES = {"q4_k_m": "LLAMA_FTYPE_MOSTLY_Q4_K_M"}  # llama.cpp's quantizer, from f16


def converter_dir(explicit: str | Path | None = None) -> Path:
    """The llama.cpp tree that holds ``convert_hf_to_gguf.py``.

    Example (usage, not run as a doctest: it needs llama.cpp's converter)::

        converter_dir()  # PosixPath('.venv/share/ft-plugin/llama.cpp')
    """
    places = [
        explicit,
        os.environ.get(LLAMA_CPP_ENV),
        Path(sys.prefix) / "share/ft-plugin/llama.cpp",
    ]
    for place in places:
        if place and (Path(place).expanduser() / CONVERTER).is_file():
            return Path(place).expanduser()
    if explicit or os.environ.get(LLAMA_CPP_ENV):
        given = explicit or os.environ[LLAMA_CPP_ENV]
        raise UserError(f"{given}: no {CONVERTER} there; point --llama-cpp (or {LLAMA_CPP_ENV}) "
                        "at a llama.cpp checkout")  # fmt: skip
    raise UserError(f"llama.cpp's converter ({CONVERTER}) not found: set {LLAMA_CPP_ENV} to a "
                    "llama.cpp checkout (git clone https://github.com/ggml-org/llama.cpp), or run "
                    "`make llama-cpp` in ft-plugin's source tree")  # fmt: skip


def architecture(folder: Path) -> str:
    """The model's architecture (``config.json``), refused in one line when the GGUF
    export does not cover it."""
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    name = (config.get("architectures") or ["(none in config.json)"])[0]
    if name not in ARCHITECTURES:
        raise UserError(f"{name}: GGUF export covers {', '.join(ARCHITECTURES)}; "
                        "`--format merged` exports any model")  # fmt: skip
    return name


def convert(folder: Path, output: Path, outtype: str, tree: Path) -> Path:
    """``folder`` (a merged model) as one GGUF file of ``outtype`` (``CONVERTER_TYPES``)."""
    command = [sys.executable, str(tree / CONVERTER), str(folder), "--outfile", str(output),
               "--outtype", outtype]  # fmt: skip
    _run(command, what=f"llama.cpp's converter on {folder.name}")
    return output


def convert_adapter(adapter: Path, base: Path, output: Path, tree: Path) -> Path:
    """A PEFT LoRA adapter as llama.cpp's LoRA GGUF (Ollama's ``ADAPTER``), against
    ``base`` (the base model's folder)."""
    command = [sys.executable, str(tree / "convert_lora_to_gguf.py"), str(adapter), "--base",
               str(base), "--outfile", str(output), "--outtype", "f16"]  # fmt: skip
    _run(command, what=f"llama.cpp's LoRA converter on {adapter}")
    return output


def quantize(source: Path, output: Path, quant: str) -> Path:
    """``source`` (an f16 GGUF) quantized by llama.cpp to ``quant`` (``QUANTIZER_TYPES``)."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, QUANTIZER_TYPES[quant])
    params.nthread = os.cpu_count() or 1
    failed = llama_cpp.llama_model_quantize(str(source).encode(), str(output).encode(),
                                            ctypes.byref(params))  # fmt: skip
    if failed:
        raise UserError(f"llama.cpp could not quantize {source.name} to {quant} (code {failed})")
    return output


def _run(command: list[str], what: str) -> None:
    # The converter needs no Hub token: it reads local files only.
    done = subprocess.run(command, env=child_environment(), capture_output=True, text=True)
    if done.returncode:
        lines = [line for line in done.stderr.splitlines() if line.strip()] or ["no output"]
        raise UserError(f"{what} failed: {lines[-1].strip()}")
