"""Model cards for trained runs, built with `huggingface_hub.ModelCard` / `ModelCardData`.

The card is deterministic (no timestamps), so pushing an unchanged run twice produces
identical bytes and no new commit. Front matter: `base_model` (the base's Hub id),
`library_name`, `pipeline_tag`, `tags`, `datasets` (Hub ids only, never local paths),
`license`, `language`, and `model-index` from `eval/report.json` when present.

What the card shows of the run is public (`hub/public.py`): the embedded recipe and the
evaluation set name files by their name, URLs by host and file name, never a local path.
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from ft_plugin import registry
from ft_plugin.methods.base import full_weights_usage

from .public import public_path, public_recipe_yaml, public_report

# Keys of the eval report that become model-index entries, with their display names.
_MODEL_INDEX_METRICS = {
    "perplexity": "Perplexity",
    "accuracy": "Accuracy",
    "macro_f1": "Macro F1",
    "bleu": "BLEU",
    "chrf": "chrF",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeL": "ROUGE-L",
}
_FRAMEWORKS = ("ft-plugin", "transformers", "peft", "trl", "torch", "datasets", "huggingface-hub")


def hub_dataset_ids(recipe: Any) -> list[str]:
    """Dataset paths that are Hub ids (OWNER/NAME, not a local file, not builtin:)."""
    ids = []
    for spec in recipe.datasets:
        path = spec.path
        if path.startswith("builtin:") or Path(path).exists() or path.startswith((".", "/", "~")):
            continue
        if path.count("/") == 1 and not Path(path).suffix:
            ids.append(path)
    return sorted(set(ids))


def _versions() -> dict[str, str]:
    found = {}
    for name in _FRAMEWORKS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def _eval_results(report: dict[str, Any] | None, model_name: str) -> list[EvalResult] | None:
    if not report:
        return None
    data = report.get("data", {})
    results = []
    for key, name in _MODEL_INDEX_METRICS.items():
        value = report.get("models", {}).get("target", {}).get(key)
        if isinstance(value, int | float):
            results.append(
                EvalResult(
                    task_type="text-generation",
                    dataset_type=data.get("template") or "custom",
                    dataset_name=data.get("source", "evaluation set"),
                    metric_type=key,
                    metric_name=name,
                    metric_value=value,
                )
            )
    return results or None


def card_data(run: RunInfo, *, library_name: str) -> ModelCardData:
    """The YAML front matter of the card."""
    recipe = run.recipe
    tags = ["ft-plugin", recipe.adapter, "trl", "sft"]
    if recipe.domain:
        tags.insert(2, recipe.domain)
    return ModelCardData(
        base_model=run.base_hub_id,
        library_name=library_name,
        pipeline_tag="text-generation",
        tags=tags,
        datasets=hub_dataset_ids(recipe) or None,
        license=recipe.hub.license,
        language=recipe.hub.language,
        model_name=run.repo_id,
        eval_results=_eval_results(run.eval_report, run.repo_id),
    )


class RunInfo:
    """What a card needs from a run directory; ``recipe_yaml`` and ``eval_report`` are the
    public versions (local paths as file names, URLs as host and file name)."""

    def __init__(self, run_dir: Path, repo_id: str, base_hub_id: str | None) -> None:
        from ft_plugin.rundir import RunDir

        run = RunDir(run_dir)
        self.run_dir = run_dir
        self.repo_id = repo_id
        self.base_hub_id = base_hub_id
        self.recipe_yaml = public_recipe_yaml(run.recipe_text())
        self.recipe = run.load_recipe().recipe
        self.metrics = run.metrics()
        self.eval_report = public_report(run.report(), self.recipe)


def _base_link(hub_id: str | None) -> str:
    return (
        f"[{hub_id}](https://huggingface.co/{hub_id})" if hub_id else "a base model not on the Hub"
    )


def _template_disclaimer(recipe: Any) -> tuple[str | None, str | None]:
    from ft_plugin.data.templates import load_template

    kind = recipe.datasets[0].type
    if kind in registry.templates() or kind.endswith((".yaml", ".yml")):
        template = load_template(kind)
        return template.description, template.disclaimer
    return None, None


def card_body(run: RunInfo, *, merged: bool, loss_curve: str | None,
              exports: dict[str, dict[str, Any]] | None = None) -> str:  # fmt: skip
    """Markdown body: purpose and limits, recipe, data, metrics, evaluation, usage, versions."""
    recipe, metrics = run.recipe, run.metrics
    purpose, disclaimer = _template_disclaimer(recipe)
    lines = [f"# {run.repo_id.split('/')[-1]}", ""]
    lines.append(
        f"A {recipe.domain or 'domain'} model: **{recipe.adapter}** fine-tuning of "
        f"{_base_link(run.base_hub_id)} with "
        "[ft-plugin](https://pypi.org/project/ft-plugin/) on TRL's `SFTTrainer`."
    )
    lines += [
        "",
        "## Intended use and limits",
        "",
        recipe.description or purpose or "Domain assistant.",
        "",
    ]
    if disclaimer:
        lines += [f"> **{disclaimer.strip()}**", ""]
    lines += [
        "Small models and small datasets make mistakes with confidence; evaluate on your own data.",
        "",
    ]
    lines += _data_section(recipe, metrics)
    lines += _federated_section(metrics)
    lines += _metrics_section(metrics, loss_curve)
    lines += _eval_section(run.eval_report)
    lines += _usage_section(run, merged)
    lines += _deployment_section(exports or {})
    lines += ["## Training recipe", "", "```yaml", run.recipe_yaml.rstrip(), "```", ""]
    lines += ["## Framework versions", ""] + [f"- {k}: {v}" for k, v in _versions().items()] + [""]
    return "\n".join(lines)


def _data_section(recipe: Any, metrics: dict[str, Any]) -> list[str]:
    lines = ["## Training data", ""]
    for spec in recipe.datasets:
        where = spec.path if spec.path in hub_dataset_ids(recipe) else (
            f"{spec.path} (sample data shipped with ft-plugin)" if spec.path.startswith("builtin:")
            else f"`{public_path(spec.path)}` (not published)"
        )  # fmt: skip
        lines.append(f"- {where}, as `{public_path(spec.type)}`")
    lines += [
        "",
        f"{metrics.get('train_rows', '?')} training rows, {metrics.get('eval_rows', '?')} held out.",
        "",
    ]
    return lines


def _federated_section(metrics: dict[str, Any]) -> list[str]:
    """How a federated run was trained: sites, rounds, strategy, privacy, traffic."""
    fed = metrics.get("federated")
    if not fed:
        return []
    dp = fed.get("dp")
    privacy = (f"differential privacy: fixed clipping on the {dp['side']} side, clipping norm "
               f"{dp['clipping_norm']}, noise multiplier {dp['noise_multiplier']}") if dp else "no differential privacy"  # fmt: skip
    return ["## Federated training", "",
            f"Trained on [Flower](https://flower.ai) across {fed['num_clients']} clients that kept their "
            f"rows (partition `{fed['partition']}`): {fed['rounds_completed']} rounds of {fed['local_steps']} "
            f"local steps, {fed['fraction_train']:.0%} of clients per round, strategy `{fed['strategy']}`, "
            f"{privacy}. Only adapter weights and metrics crossed the network "
            f"({fed['bytes_sent'] + fed['bytes_received']:,} bytes).", ""]  # fmt: skip


def _metrics_section(metrics: dict[str, Any], loss_curve: str | None) -> list[str]:
    keys = ("train_loss", "eval_loss", "eval_perplexity", "steps", "train_tokens", "tokens_per_second",
            "wall_seconds", "trainable_params", "total_params", "peak_memory_mb")  # fmt: skip
    lines = ["## Training metrics", "", "| metric | value |", "|---|---:|"]
    lines += [f"| {k} | {metrics[k]} |" for k in keys if metrics.get(k) is not None]
    if loss_curve:
        lines += ["", f"![Training curves]({loss_curve})"]
    return [*lines, ""]


def _eval_section(report: dict[str, Any] | None) -> list[str]:
    if not report:
        return ["## Evaluation", "", "Not evaluated yet (`ft-plugin eval RUN_DIR --baseline`).", ""]
    models = report["models"]
    roles = [r for r in ("baseline", "target") if r in models]
    names = [k for k in models["target"] if isinstance(models["target"][k], int | float)]
    header = ["metric", *("base model" if r == "baseline" else "this model" for r in roles)]
    lines = [
        "## Evaluation",
        "",
        f"On {report['data']['source']} ({report['data']['rows']} rows).",
        "",
    ]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name in names:
        cells = [
            f"{models[r][name]:.4g}" if isinstance(models[r].get(name), int | float) else "–"
            for r in roles
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def _usage_section(run: RunInfo, merged: bool) -> list[str]:
    """How to load the published model: a merged model as plain weights, else as its
    method says (PEFT's loader, or transformers for full weights)."""
    if merged:
        usage = full_weights_usage(run.repo_id)
    else:
        method = registry.load_method(run.recipe.adapter)
        usage = method.card_usage(run.repo_id, run.base_hub_id)
    return ["## Usage", "", *usage]


def _deployment_section(exports: dict[str, dict[str, Any]]) -> list[str]:
    """The GGUF files pushed with the run (``ft-plugin export``'s record), each with how it
    compared with the run before upload."""
    if not exports:
        return []
    lines = ["## Deployment files", "",
             "Exported with `ft-plugin export` and loaded back in llama.cpp before upload: the "
             "export's greedy answers to held-out prompts and its held-out perplexity against "
             "this model's.", "",
             "| file | weights | size | held-out perplexity, export vs model | greedy answers as the model's |",
             "|---|---|---:|---|---|"]  # fmt: skip
    notes = []
    for name, record in exports.items():
        check = record["check"]
        lines.append(f"| `{name}` | {record['quant']} | {record['bytes'] / 1e6:,.0f} MB | "
                     f"{check['perplexity_export']:.3f} vs {check['perplexity_run']:.3f} "
                     f"({check['perplexity_change']:+.2%}) | {check['agreeing']}/{check['answered']} |")  # fmt: skip
        if check.get("prompts_tokenized_otherwise"):
            notes.append(f"`{name}`: llama.cpp tokenizes {check['prompts_tokenized_otherwise']} "
                         f"of {check['rows']} held-out prompts otherwise than this model's "
                         f"tokenizer (first: {check['first_token_difference']}).")  # fmt: skip
    first = next(iter(exports))
    lines += ["", *notes, "" if notes else None,
              f"llama.cpp: `llama-cli -m {first} -cnv` (the chat template travels in the file).",
              ""]  # fmt: skip
    if any("Modelfile" in r["files"] for r in exports.values()):
        lines += ["Ollama: download the repo, then `ollama create NAME -f Modelfile` (its "
                  "template, stop tokens and system prompt are this model's).", ""]  # fmt: skip
    return [line for line in lines if line is not None]


def build_card(run: RunInfo, *, merged: bool = False, loss_curve: str | None = None,
               exports: dict[str, dict[str, Any]] | None = None) -> ModelCard:  # fmt: skip
    """The complete model card of a run, ready to save as README.md.

    Example (usage, not run as a doctest: it needs a model, files or the Hub)::

        card = build_card(RunInfo(Path("runs/demo"), "me/demo", "HuggingFaceTB/SmolLM2-135M-Instruct"))
        card.data.library_name  # 'peft'
    """
    library = (
        "transformers"
        if merged or not registry.load_method(run.recipe.adapter).uses_peft
        else "peft"
    )
    data = card_data(run, library_name=library)
    return ModelCard(
        f"---\n{data.to_yaml()}\n---\n\n"
        f"{card_body(run, merged=merged, loss_curve=loss_curve, exports=exports)}"
    )
