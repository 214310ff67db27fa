"""The ft-plugin Gradio Space: compare, evaluate, rate and document a fine-tuned model.

``space/app.py`` is the thin entry point that runs as is on a Hugging Face Space
(``app_file: app.py``, with ``ft-plugin`` in its requirements) and locally through
``ft-plugin space TARGET`` or ``python space/app.py``.

Tabs (:mod:`ft_plugin.space.tabs`, one module each): **Train** (data, column mapping,
cleaning report, method, recipe, and an ``ft-plugin train`` child watched live; see
:mod:`ft_plugin.space.training`), **Compare** (base and tuned answers
side by side, with latency and tokens/s), **Evaluate** (ft-plugin's evaluation of an
uploaded file or the template's sample, base vs tuned, with plots and a downloadable
report), **Rate** (blind A/B rating appended to ``DATA_DIR/ratings.jsonl``), **Model card**.

Named API endpoints (:mod:`ft_plugin.space.api`; ``gradio_client.Client(url).view_api()``):

- ``/compare`` (prompt, max_new_tokens=128, temperature=0.0, top_p=1.0, adapter="")
  -> (base_answer, tuned_answer); temperature 0 is greedy decoding.
- ``/rate`` (prompt, answer_a, answer_b, relevance, accuracy, readability, preference,
  tuned="b", adapter="", relevance_a=None, …, readability_b=None) -> str; scores are
  integers 1-5, preference is "a", "b" or "tie"; the caller is not blind, so ``tuned``
  says which answer came from the tuned model (by default answer_b is the tuned answer
  and answer_a the base one); the six per-answer scores are optional, all or none.
- ``/evaluate`` (file) -> the evaluation report as JSON (``models.target``,
  ``models.baseline``, ``delta``, ``data``, ``settings``).
- ``/train_start`` (file, template, fields, method, base_model, overrides) -> run id;
  ``fields`` and ``overrides`` are JSON object strings.
- ``/train_status``, ``/train_stop``, ``/train_resume`` (run_id) -> the job as JSON
  (``state``, ``step``, ``max_steps``, ``loss``, ``eval_loss``, ``tokens_per_second``,
  ``run_dir``, …).

Limits (:class:`Limits`) keep a public Space alive: prompt length, a max_new_tokens cap
(requests above it are clamped to it, with a warning), a per-answer generation time
limit (``generate(max_time=...)``), one model job at a time behind a bounded queue,
capped evaluation rows and upload size. Models load from safetensors only and never run
remote code. Errors reach users as one-line messages, never as tracebacks.

The modules, by concern: :mod:`.settings` (limits, config.yaml), :mod:`.loading` (run
directories and Hub adapters), :mod:`.served` (the model, its adapters, locks and gate), :mod:`.state`
(:class:`SpaceState`: the served model with one service per job, no Gradio), the services
:mod:`.serving` (serve and publish a run), :mod:`.compare`, :mod:`.rating` (over
:mod:`.ratings`, the ratings store), :mod:`.evaluation`, :mod:`.card` (model card tab
content) and :mod:`.training` (the Train tab's data step, recipes and jobs), :mod:`.launch`
(``ft-plugin space``), :mod:`.ui` (shared Gradio helpers), :mod:`.tabs`, :mod:`.api`,
:mod:`.blocks` (the page).
"""

from ft_plugin.evaluate.generation import Answer, generate_answer

from .blocks import build_app, build_blocks, main
from .compare import Comparison
from .evaluation import EvalOutcome
from .loading import AdapterInfo, resolve_target
from .ratings import CRITERIA, PREFERENCES, SCORE_FIELDS, RatingsStore, summary_markdown
from .settings import DATA_SUFFIXES, Limits, SpaceConfig, read_space_config
from .state import SpaceState
from .ui import launch_kwargs, shown_errors

__all__ = [
    "CRITERIA",
    "DATA_SUFFIXES",
    "PREFERENCES",
    "SCORE_FIELDS",
    "AdapterInfo",
    "Answer",
    "Comparison",
    "EvalOutcome",
    "Limits",
    "RatingsStore",
    "SpaceConfig",
    "SpaceState",
    "build_app",
    "build_blocks",
    "generate_answer",
    "launch_kwargs",
    "main",
    "read_space_config",
    "resolve_target",
    "shown_errors",
    "summary_markdown",
]
