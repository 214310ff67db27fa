"""`ft-plugin export`: a finished run as files people deploy, each checked by loading it
back before the command reports success.

- ``merged``: a folder `transformers`, vLLM and TGI load as it is (adapter merged, the
  run's chat template, tokenizer and stop tokens in ``generation_config.json``);
- ``gguf``: one llama.cpp file, written by llama.cpp's own converter from that folder and
  quantized by llama.cpp (`f16`, `bf16`, `q8_0`, `q4_k_m`);
- ``ollama``: the GGUF and a Modelfile (template, stop tokens, the domain's system prompt).

Modules: ``stops`` (end-of-turn tokens of a chat template), ``merged``, ``llama_cpp``
(llama.cpp's converter and quantizer), ``ollama`` (the Modelfile), ``check`` (the
load-back comparison with the tuned model) and ``run`` (one export, staged and checked).
"""

from __future__ import annotations

from .run import FORMATS, QUANTS, ExportResult, export_run

__all__ = ["FORMATS", "QUANTS", "ExportResult", "export_run"]
