""" "Train on ratings": the Space's own blind ratings of a served adapter become DPO pairs,
and a DPO run starts from that adapter (its reference), as
`ft-plugin data preferences` + `ft-plugin train` with `rl: dpo` would run it.

Only the owner starts one (the service asks :class:`~ft_plugin.space.access.Access`);
nothing of the run comes from a request but the Space's allowed keys: the data are the
Space's own ratings, the starting adapter is one the Space serves, the run lands under
``DATA_DIR/train/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ft_plugin.errors import UserError

from .recipe import REQUEST_ORIGIN, SAVE_TOTAL_LIMIT, check_contained, checked_overrides

MIN_PAIRS = 2  # fewer pairs than this teach nothing a user could see
PAIRS_FILE = "pairs.jsonl"


def ratings_pairs(records: list[dict[str, Any]], label: str) -> Any:
    """The usable pairs among ``records`` rated on adapter ``label`` (a ``PairSet``),
    or one line saying how many there are and how many are needed."""
    from ft_plugin.evaluate.preference_pairs import pairs_from_records

    pairs = pairs_from_records(records, adapter=label, source="the Space's ratings")
    if len(pairs.pairs) < MIN_PAIRS:
        dropped = ", ".join(f"{n} {why}" for why, n in pairs.dropped.items()) or "none left out"
        raise UserError(f"{label}: {len(pairs.pairs)} usable preference pair(s) from "
                        f"{pairs.rows_in} rating(s) ({dropped}); rate at least {MIN_PAIRS} "
                        "answers with a preference (not a tie) in the Rate tab first")  # fmt: skip
    return pairs


def ratings_recipe(served: Any, pairs_file: Path, run_dir: Path, overrides: dict[str, Any]) -> Any:
    """The DPO recipe (``LoadedRecipe``) that tunes the served run ``served`` (an
    ``AdapterInfo``) on ``pairs_file``: its own recipe, with `rl: dpo`, the pairs as its
    only data, `lora_model_dir` the served run (the reference), and the request's allowed
    keys."""
    from ft_plugin import registry
    from ft_plugin.config import load_recipe
    from ft_plugin.rundir import RunDir

    if not registry.load_method(served.recipe.adapter).uses_peft:
        raise UserError(f"{served.label}: trains full weights; Train on ratings tunes a served "
                        "adapter (LoRA, DoRA, IA3, …)")  # fmt: skip
    forced = {"rl": "dpo", "datasets": [{"path": str(pairs_file), "type": "chat_template.default"}],
              "lora_model_dir": str(served.run_dir), "output_dir": str(run_dir),
              "report_to": ["tensorboard"], "save_total_limit": SAVE_TOTAL_LIMIT,
              "val_set_size": 0, "test_datasets": None, "stages": None, "adapters": None,
              "hub_model_id": None, "ewc": None, "replay": None}  # fmt: skip
    source = str(RunDir(served.run_dir).recipe_path)
    loaded = load_recipe(source, {**checked_overrides(overrides), **forced},
                         overrides_origin=REQUEST_ORIGIN)  # fmt: skip
    loaded.name = f"space-dpo-{served.label}"
    check_contained(loaded.recipe, run_dir, start_from=Path(served.run_dir))
    return loaded
