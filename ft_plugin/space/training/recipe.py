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
# method (as the page names it) -> (builtin recipe suffix, recipe `adapter:` value)
METHODS = {
    "lora": ("lora", "lora"),
    "qlora": ("qlora", "qlora"),
    "dora": ("lora", "dora"),
    "bottleneck": ("adapter", "bottleneck"),
    "freeze": ("freeze", "freeze"),
    "full": ("full", "full"),
}
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


def parse_overrides(text: str | dict[str, Any] | None) -> dict[str, Any]:
    """Recipe overrides given as a JSON object string (the API's form).

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
    return {str(k): v for k, v in value.items()}


def builtin_recipe(template: str, method: str) -> tuple[str, list[str]]:
    """The builtin recipe a template and method start from, and the overrides it needs.

    Example:
        >>> builtin_recipe("medical", "dora"), builtin_recipe("legal", "freeze")
        (('medical-lora', ['adapter=dora']), ('legal-lora', ['adapter=freeze', 'learning_rate=5e-05']))
    """
    from ft_plugin import registry
    from ft_plugin.data.templates import load_template

    if method not in METHODS:
        raise UserError(f"method: {method!r} is not one of {', '.join(METHODS)}")
    suffix, adapter = METHODS[method]
    names = set(registry.recipes())
    domain = load_template(template).domain
    for prefix in (template, domain):
        if f"{prefix}-{suffix}" in names:
            extra = [] if adapter == suffix or suffix == "adapter" else [f"adapter={adapter}"]
            return f"{prefix}-{suffix}", extra
    prefix = template if f"{template}-lora" in names else domain
    extra = [f"adapter={adapter}"]
    if f"medical-{suffix}" in names:  # the method's learning rate, from its medical recipe
        from ft_plugin.config import load_recipe

        extra.append(f"learning_rate={load_recipe(f'medical-{suffix}').recipe.learning_rate}")
    return f"{prefix}-lora", extra


def _yaml_value(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)  # JSON is YAML flow syntax


def build_recipe(request: TrainRequest, run_dir: Path, limits: Limits) -> Any:
    """The resolved recipe (``LoadedRecipe``) of ``request``, training into ``run_dir``;
    refused with one message when it breaks the Space's caps."""
    from ft_plugin.config import load_recipe
    from ft_plugin.data.columns import recipe_field_keys
    from ft_plugin.data.templates import load_template

    name, extra = builtin_recipe(request.template, request.method)
    dataset: dict[str, Any] = {"path": request.data, "type": request.template}
    dataset |= recipe_field_keys(load_template(request.template), request.fields)
    if request.encoding:
        dataset["encoding"] = request.encoding
    overrides = [*extra, f"base_model={_yaml_value(request.base_model)}",
                 f"datasets={_yaml_value([dataset])}", f"output_dir={_yaml_value(str(run_dir))}",
                 "report_to=tensorboard"]  # fmt: skip
    overrides += [f"{key}={_yaml_value(value)}" for key, value in request.overrides.items()]
    loaded = load_recipe(name, overrides)
    loaded.name = f"space-{request.template}-{request.method}"
    return loaded


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


def check_caps(recipe: Any, rows: int, limits: Limits) -> int:
    """The planned steps, or one message when they are over the Space's cap."""
    steps = planned_steps(recipe, rows)
    if steps > limits.max_train_steps:
        raise UserError(
            f"max_steps: this run would take {steps:,} steps, over this Space's cap of "
            f"{limits.max_train_steps:,}; set max_steps to at most {limits.max_train_steps:,} "
            "(or fewer epochs), or train with `ft-plugin train` on your machine"
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
