"""What the Train tab asks for (:class:`TrainRequest`) as a recipe ``ft-plugin train`` runs.

The request starts from the builtin recipe of the template's domain and the method
(``medical-lora``, ``legal-adapter``, …), so a click trains what the command line would
train with the same choices; the resolved YAML is written beside the job and offered
for download. The Space's caps (steps) are checked here, before anything runs.

Example (usage, not run as a doctest: it needs a model, files or the Hub)::

    request = TrainRequest(data="builtin:medical", template="medical", overrides={"max_steps": 5})
    loaded = build_recipe(request, Path("space_data/train/x/run"), Limits())
    print(loaded.to_yaml())
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from ..settings import Limits

DEFAULT_BASE = "embedded:smollm2-135m-instruct"
# The hyper-parameters the page shows, in order (recipe keys).
KEY_SETTINGS = ("max_steps", "num_epochs", "learning_rate", "micro_batch_size",
                "gradient_accumulation_steps", "sequence_len", "val_set_size", "lora_r",
                "lora_alpha")  # fmt: skip


@dataclass
class TrainRequest:
    """One training asked for by the page or the API."""

    data: str  # the uploaded file (in the job folder) or builtin:TEMPLATE
    template: str
    fields: dict[str, str] = field(default_factory=dict)  # template field -> column
    method: str = "lora"
    base_model: str = DEFAULT_BASE
    overrides: dict[str, Any] = field(default_factory=dict)  # recipe key -> value
    encoding: str | None = None


# The recipe keys a Space request may set: the hyper-parameters the Train tab shows and
# their like. Everything else (data, model code, paths, publishing, stages) is refused.
SPACE_KEYS = ("learning_rate", "lr_scheduler", "max_steps", "num_epochs", "micro_batch_size",
              "gradient_accumulation_steps", "sequence_len", "val_set_size", "lora_r",
              "lora_alpha", "lora_dropout", "bottleneck_size", "eval_steps", "save_steps",
              "warmup_steps", "weight_decay", "seed", "early_stopping_patience",
              "logging_steps")  # fmt: skip
_SCALARS = (bool, int, float, str, type(None))
MAX_VALUE_CHARS = 64  # the longest scheduler name is 26 characters
SAVE_TOTAL_LIMIT = 2  # checkpoints a Space run keeps on disk, whatever save_steps says
REQUEST_ORIGIN = "the Space's request"  # where errors about a request's values say they came from


def parse_overrides(text: str | dict[str, Any] | None) -> dict[str, Any]:
    """Recipe overrides given as a JSON object string (the API's form), keys the Space
    allows (``SPACE_KEYS``) with plain values; every other key refused in one line.

    Example:
        >>> parse_overrides('{"max_steps": 5, "learning_rate": 1e-4}')
        {'max_steps': 5, 'learning_rate': 0.0001}
    """
    if not text:
        return {}
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        raise UserError('overrides: expected a JSON object such as {"max_steps": 5}') from None
    if not isinstance(value, dict):
        raise UserError('overrides: expected a JSON object such as {"max_steps": 5}')
    return checked_overrides(value)


def checked_overrides(overrides: dict[str, Any]) -> dict[str, Any]:
    """``overrides`` when every key is one the Space sets and every value a plain one."""
    refused = [str(key) for key in overrides if key not in SPACE_KEYS]
    if refused:
        raise UserError(
            f"overrides: {', '.join(refused)} {'is not a key' if len(refused) == 1 else 'are not keys'} "
            f"this Space sets; it sets: {', '.join(SPACE_KEYS)}"
        )
    for key, item in overrides.items():
        if not isinstance(item, _SCALARS) or (
            isinstance(item, str) and len(item) > MAX_VALUE_CHARS
        ):
            raise UserError(
                f"overrides: {key}: expected a number or a short word, got {item!r:.40}"
            )
    return dict(overrides)


def check_base_model(base_model: str, allowed: list[str]) -> str:
    """``base_model`` when it is one of the models the owner lets the Space train.

    Example:
        >>> check_base_model("embedded:smollm2-135m-instruct", [DEFAULT_BASE])
        'embedded:smollm2-135m-instruct'
    """
    chosen = str(base_model or "").strip()
    if chosen not in allowed:
        raise UserError(
            f"base model {chosen!r:.80}: not one this Space trains; choose one of: "
            f"{', '.join(allowed)} (its owner lists them under base_models: in config.yaml)"
        )
    return chosen


def space_methods() -> list[str]:
    """The methods a request may pick: every registered one, builtins and plugins'
    (what `adapter:` takes), in the registry's order.

    Example:
        >>> "ia3" in space_methods() and "llama-adapter" in space_methods()
        True
    """
    from ft_plugin import registry

    return list(registry.method_names())


def builtin_recipe(template: str, method: str) -> tuple[str, dict[str, Any]]:
    """The builtin recipe a template and method start from, and the overrides (recipe key
    -> value) it needs.

    Example:
        >>> builtin_recipe("medical", "dora")
        ('medical-lora', {'adapter': 'dora'})
        >>> builtin_recipe("legal", "freeze")
        ('legal-lora', {'adapter': 'freeze', 'learning_rate': 5e-05})
    """
    from ft_plugin import registry
    from ft_plugin.data.templates import load_template

    if method not in space_methods():
        raise UserError(f"method: {method!r} is not one of {', '.join(space_methods())}")
    # The method's own builtin recipes (medical-lora, legal-adapter, ...) when the domain
    # has one, else the domain's LoRA recipe with `adapter:` set to the method.
    suffix = registry.load_method(method).recipe_name_suffix
    names = set(registry.recipes())
    domain = load_template(template).domain
    for prefix in (template, domain):
        if f"{prefix}-{suffix}" in names:
            return f"{prefix}-{suffix}", {}
    prefix = template if f"{template}-lora" in names else domain
    extra: dict[str, Any] = {"adapter": method}
    if f"medical-{suffix}" in names:  # the method's learning rate, from its medical recipe
        from ft_plugin.config import load_recipe

        extra["learning_rate"] = load_recipe(f"medical-{suffix}").recipe.learning_rate
    return f"{prefix}-lora", extra


def build_recipe(request: TrainRequest, run_dir: Path, limits: Limits) -> Any:
    """The resolved recipe (``LoadedRecipe``) of ``request``, training into ``run_dir``:
    the builtin recipe of the template and method, the upload as its only data, the
    request's allowed keys, at most ``SAVE_TOTAL_LIMIT`` checkpoints."""
    from ft_plugin.config import load_recipe
    from ft_plugin.data.columns import recipe_field_keys
    from ft_plugin.data.templates import load_template

    name, extra = builtin_recipe(request.template, request.method)
    dataset: dict[str, Any] = {"path": request.data, "type": request.template}
    dataset |= recipe_field_keys(load_template(request.template), request.fields)
    if request.encoding:
        dataset["encoding"] = request.encoding
    overrides = {**extra, **checked_overrides(request.overrides),
                 "base_model": request.base_model, "datasets": [dataset],
                 "output_dir": str(run_dir), "report_to": ["tensorboard"],
                 "save_total_limit": SAVE_TOTAL_LIMIT}  # fmt: skip
    loaded = load_recipe(name, overrides, overrides_origin=REQUEST_ORIGIN)
    loaded.name = f"space-{request.template}-{request.method}"
    check_contained(loaded.recipe, run_dir)
    return loaded


def check_contained(recipe: Any, run_dir: Path, start_from: Path | None = None) -> None:
    """Refuse a recipe that would run code, read other data or publish from the Space.

    What no request can set, checked on the result: a builtin (or served run's) recipe
    that ever gained one of these would otherwise slip through. ``start_from`` is the one
    `lora_model_dir` allowed: the served run a ratings run starts from, chosen by the Space.
    """
    start = Path(recipe.lora_model_dir) if recipe.lora_model_dir else None
    found = [key for key, bad in (
        ("trust_remote_code", recipe.trust_remote_code), ("stages", recipe.stages),
        ("adapters", recipe.adapters), ("test_datasets", recipe.test_datasets),
        ("hub_model_id", recipe.hub_model_id), ("lora_model_dir", start != start_from),
        ("output_dir", Path(recipe.output_dir) != Path(run_dir)),
        ("datasets", len(recipe.datasets) != 1),
    ) if bad]  # fmt: skip
    if found:
        raise UserError(f"the Space does not train recipes that set {', '.join(found)}")


def planned_steps(recipe: Any, rows: int) -> int:
    """Optimizer steps the recipe runs on ``rows`` rows (an upper bound: cleaning drops
    rows): ``max_steps`` when set, else epochs × batches.

    Example:
        >>> from types import SimpleNamespace as R
        >>> planned_steps(R(max_steps=None, num_epochs=2, val_set_size=0.1, micro_batch_size=4,
        ...               gradient_accumulation_steps=2), 100)
        24
    """
    if recipe.max_steps:
        return int(recipe.max_steps)
    held_out = recipe.val_set_size if recipe.val_set_size >= 1 else rows * recipe.val_set_size
    per_step = recipe.micro_batch_size * recipe.gradient_accumulation_steps
    return math.ceil(recipe.num_epochs * math.ceil(max(1, rows - int(held_out)) / per_step))


def planned_tokens(recipe: Any, rows: int, steps: int) -> int:
    """Tokens a run may process at most: its training steps, and its evaluations of the
    held-out rows (each ``eval_steps``, else once), at ``sequence_len`` a row.

    Example:
        >>> from types import SimpleNamespace as R
        >>> planned_tokens(R(val_set_size=10, micro_batch_size=4, gradient_accumulation_steps=2,
        ...                  sequence_len=512, eval_steps=5), 100, 20)
        102400
    """
    per_step = recipe.micro_batch_size * recipe.gradient_accumulation_steps
    held_out = recipe.val_set_size if recipe.val_set_size >= 1 else rows * recipe.val_set_size
    evaluations = math.ceil(steps / recipe.eval_steps) if recipe.eval_steps else 1
    return (steps * per_step + evaluations * math.ceil(held_out)) * recipe.sequence_len


def check_caps(recipe: Any, rows: int, limits: Limits) -> int:
    """The planned steps, or one message when the run is over the Space's caps: steps,
    sequence length, and the tokens it may process (training and evaluation)."""
    steps = planned_steps(recipe, rows)
    if steps > limits.max_train_steps:
        raise UserError(
            f"max_steps: this run would take {steps:,} steps, over this Space's cap of "
            f"{limits.max_train_steps:,}; set max_steps to at most {limits.max_train_steps:,} "
            "(or fewer epochs), or train with `ft-plugin train` on your machine"
        )
    if recipe.sequence_len > limits.max_sequence_len:
        raise UserError(
            f"sequence_len: {recipe.sequence_len:,} is over this Space's cap of "
            f"{limits.max_sequence_len:,} tokens"
        )
    tokens = planned_tokens(recipe, rows, steps)
    if tokens > limits.max_train_tokens:
        raise UserError(
            f"this run would process up to {tokens:,} tokens (steps x micro_batch_size x "
            f"gradient_accumulation_steps x sequence_len, plus evaluations), over this Space's "
            f"cap of {limits.max_train_tokens:,}: lower one of them, or evaluate less often"
        )
    return steps


def key_settings(template: str, method: str) -> dict[str, Any]:
    """The page's hyper-parameters as the builtin recipe for ``template`` and ``method``
    sets them (``max_steps`` None: the run is ``num_epochs`` long).

    Example:
        >>> key_settings("medical", "lora")["lora_r"]
        16
    """
    from ft_plugin.config import load_recipe

    name, extra = builtin_recipe(template, method)
    recipe = load_recipe(name, extra).recipe
    return {key: getattr(recipe, key) for key in KEY_SETTINGS}
