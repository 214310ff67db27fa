"""A site's recipe: its own file, plus the few keys a server may set.

A site trains the recipe it names itself (its SuperNode's ``--node-config
"recipe=…"``), so the keys that run code, reach its disk or the network, or choose
the model (``trust_remote_code``, ``base_model``, ``datasets``, ``test_datasets``,
``replay``, ``ewc``, ``output_dir``, ``lora_model_dir``, ``hub_model_id``, ``hub``, …)
are the site's own. With each round the server sends only :data:`SERVER_KEYS`: the
round's optimisation settings and the adapter's shape, which every site must share
for the average to mean anything. A message that sets anything else, or a value the
schema refuses, is refused by the site as a whole: it trains nothing and says why.

Example:
    >>> check_server_config({"round": 2, "strategy": "fedavg",
    ...                      "settings": '{"learning_rate": 0.001, "lora_r": 8}'})
    {'learning_rate': 0.001, 'lora_r': 8}
    >>> check_server_config({"round": 2, "strategy": "fedavg",
    ...                      "settings": '{"trust_remote_code": true}'})
    Traceback (most recent call last):
    ...
    ft_plugin.federated.site_recipe.SiteRefusal: the server set trust_remote_code, which a site takes only from its own recipe (a server sets hyper-parameters and the adapter's shape: site_recipe.SERVER_KEYS)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from ft_plugin.errors import UserError

# What a server may set at a site. Everything else in a recipe stays the site's own.
SERVER_KEYS = (
    # one round's optimisation
    "learning_rate", "max_steps", "micro_batch_size", "gradient_accumulation_steps",
    "lr_scheduler", "optimizer", "warmup_steps", "warmup_ratio", "weight_decay",
    "max_grad_norm", "seed",
    "sequence_len", "train_on_inputs",
    # the adapter's shape: the tensors every site trains and the server averages
    "adapter", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
    "lora_target_linear", "lora_modules_to_save", "lora_init", "peft_use_dora",
    "peft_use_rslora", "ia3_target_modules", "ia3_feedforward_modules", "adapter_len",
    "adapter_layers", "bottleneck_size", "bottleneck_non_linearity", "bottleneck_dropout",
)  # fmt: skip
# The entries of a round's ConfigRecord: Flower's own, ours, and DP's clipping norm.
MESSAGE_KEYS = ("server-round", "round", "strategy", "settings", "clipping_norm")
STRATEGIES = ("fedavg", "ffa-lora")
SITE_REFUSED = 100  # Error.code of a site's reply that refuses the server's message
# Set by the site for itself: no trackers, no checkpoints, a fresh run every round (and,
# with an eval set, no evaluation inside a round: the server asks for it separately). The
# recipe's own per-epoch counts and strategies are unset: they would contradict the steps.
SITE_FIXED = {"report_to": "none", "save_steps": 1000000, "saves_per_epoch": None,
              "save_strategy": None, "resume": False}  # fmt: skip
NO_EVAL_IN_ROUND = {"eval_steps": 1000000, "evals_per_epoch": None, "eval_strategy": None}
ROUND_ORIGIN = "the round's settings"  # where errors about the overrides below say they came from


class SiteRefusal(UserError):
    """A server's message that this site will not act on (the reason is one line)."""


def server_settings(recipe: Any, learning_rate: float) -> dict[str, Any]:
    """What the server sends with a round: :data:`SERVER_KEYS` from its recipe (unset
    ones too, as null, so that every site trains the same adapter), this round's
    learning rate, and ``federated.local_steps`` as ``max_steps``.

    Example:
        >>> from ft_plugin.config import load_recipe
        >>> sent = server_settings(load_recipe("medical-lora").recipe, 1e-4)
        >>> sent["learning_rate"], "base_model" in sent, "datasets" in sent
        (0.0001, False, False)
    """
    data = recipe.model_dump(mode="json")
    sent = {key: data.get(key) for key in SERVER_KEYS}
    sent["learning_rate"] = float(learning_rate)
    if recipe.federated is not None:
        sent["max_steps"] = recipe.federated.local_steps
    return sent


def check_server_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The recipe keys a round's ConfigRecord sets, once every entry is one a site takes
    from a server; :class:`SiteRefusal` naming the first that is not."""
    unknown = sorted(set(config) - set(MESSAGE_KEYS))
    if unknown:
        raise SiteRefusal(f"the server's message has {', '.join(unknown)}, which a site "
                          f"does not take (expected: {', '.join(MESSAGE_KEYS)})")  # fmt: skip
    for key in ("server-round", "round"):
        if key in config and (not isinstance(config[key], int) or isinstance(config[key], bool)
                              or config[key] < 0):  # fmt: skip
            raise SiteRefusal(f"{key} {config[key]!r} is not a round number")
    norm = config.get("clipping_norm", 1.0)
    if isinstance(norm, bool) or not isinstance(norm, int | float) or not 0 < norm < math.inf:
        raise SiteRefusal(f"clipping_norm {norm!r} is not a positive number")
    if str(config.get("strategy", "fedavg")) not in STRATEGIES:
        raise SiteRefusal(f"strategy {config['strategy']!r}: expected {' or '.join(STRATEGIES)}")
    try:
        settings = json.loads(str(config.get("settings", "{}")))
    except ValueError:
        raise SiteRefusal("the server's settings are not a JSON object") from None
    if not isinstance(settings, dict):
        raise SiteRefusal("the server's settings are not a JSON object")
    for key in settings:
        if key not in SERVER_KEYS:
            raise SiteRefusal(f"the server set {key}, which a site takes only from its own recipe "
                              "(a server sets hyper-parameters and the adapter's shape: "
                              "site_recipe.SERVER_KEYS)")  # fmt: skip
    return settings


def site_overrides(node: Mapping[str, Any], settings: Mapping[str, Any]) -> dict[str, Any]:
    """Overrides (recipe key -> value) for the site's own recipe: its dataset from the node
    config (a simulated site's share), the site's fixed choices, then the server's settings.

    Example:
        >>> site_overrides({"torch-threads": 2}, {"lora_r": 8})["torch_threads"]
        2
    """
    overrides: dict[str, Any] = {}
    if node.get("dataset"):
        overrides["datasets"] = [json.loads(str(node["dataset"]))]
    overrides |= SITE_FIXED
    if int(node.get("torch-threads", 0) or 0) > 0:
        overrides["torch_threads"] = int(node["torch-threads"])
    # Keys come from SERVER_KEYS (check_server_config), so none reaches into another section.
    overrides |= settings
    return overrides


def load_site_recipe(node: Mapping[str, Any], settings: Mapping[str, Any]) -> Any:
    """The site's own recipe (``recipe`` in its node config) with the server's settings;
    :class:`SiteRefusal` when the node names no recipe or the settings do not validate."""
    from ft_plugin import registry
    from ft_plugin.config import load_recipe

    reference = str(node.get("recipe") or "")
    if not reference:
        raise SiteRefusal("this SuperNode names no recipe: start it with --node-config "
                          "\"recipe='SITE.yaml' work='DIR'\" (a site never runs the server's recipe)")  # fmt: skip
    overrides = site_overrides(node, settings)
    try:
        loaded = load_recipe(reference, overrides, overrides_origin=ROUND_ORIGIN)
        if loaded.recipe.val_set_size or loaded.recipe.test_datasets:
            overrides |= NO_EVAL_IN_ROUND
            loaded = load_recipe(reference, overrides, overrides_origin=ROUND_ORIGIN)
    except UserError as exc:
        raise SiteRefusal(f"the site's recipe with the server's settings: {exc}") from None
    if not registry.load_method(loaded.recipe.adapter).uses_peft:
        raise SiteRefusal(f"adapter {loaded.recipe.adapter}: a site trains PEFT adapters only")
    return loaded
