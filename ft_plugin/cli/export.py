"""`ft-plugin export`: deployable files of a finished run, checked by loading them back."""

from __future__ import annotations

import argparse
from pathlib import Path

from .arguments import Commands


def add_parser(commands: Commands) -> None:
    """``export``."""
    from ft_plugin.export import FORMATS, QUANTS
    from ft_plugin.export.check import TOLERANCES
    from ft_plugin.export.run import CHECK_ROWS

    bounds = ", ".join(f"{k} {v[0]:.1%}" for k, v in TOLERANCES.items())
    export = commands.add_parser(
        "export",
        help="merged weights, GGUF or an Ollama model of a finished run",
        description="Write deployable files of a run and check them by loading them back: "
        "greedy answers to held-out prompts and held-out perplexity against the run's "
        f"(largest perplexity change: {bounds}).",
    )
    export.add_argument("run_dir")
    export.add_argument("--format", choices=FORMATS, required=True, dest="fmt")
    export.add_argument("--quant", choices=QUANTS, default="f16",
                        help="GGUF weight type (default f16; q4_k_m by llama.cpp's quantizer)")  # fmt: skip
    export.add_argument("--output", help="folder for the files (default RUN_DIR/export)")
    export.add_argument("--llama-cpp", metavar="DIR",
                        help="a llama.cpp checkout with convert_hf_to_gguf.py (default "
                        "$LLAMA_CPP_DIR, else the one `make llama-cpp` installs)")  # fmt: skip
    export.add_argument("--check-rows", type=int, default=CHECK_ROWS,
                        help=f"held-out prompts the export must answer as the run does (default {CHECK_ROWS})")  # fmt: skip
    export.add_argument("--allow-tokenizer-difference", action="store_true",
                        help="keep a GGUF whose tokenizer (llama.cpp's) splits some held-out "
                        "prompts otherwise than the run's; the difference is printed and recorded")  # fmt: skip
    export.add_argument("--adapter-gguf", action="store_true",
                        help="GGUF of the base plus the adapter as llama.cpp's LoRA GGUF (Ollama's "
                        "ADAPTER) instead of merged weights; LoRA and QLoRA runs")  # fmt: skip
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from ft_plugin.export import export_run

    result = export_run(Path(args.run_dir), args.fmt, quant=args.quant,
                        output=Path(args.output) if args.output else None,
                        llama_cpp_dir=args.llama_cpp, check_rows=args.check_rows,
                        allow_tokenizer_difference=args.allow_tokenizer_difference,
                        adapter_gguf=args.adapter_gguf)  # fmt: skip
    for name in result.files:
        print(f"wrote {result.folder / name}")
    print(f"checked: {result.check.summary()}")
    if result.command:
        print(f"next: cd {result.folder} && {result.command}")
    return 0
