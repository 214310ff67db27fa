"""Layer freezing: train the top decoder layers (or a regex list), freeze the rest."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

from ft_plugin.errors import UserError
from ft_plugin.models import new_token_ids, note

from .base import FineTuningMethod

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel

    from ft_plugin.config import Recipe

_LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def trainable_patterns(recipe: Recipe, num_layers: int) -> list[str]:
    """Regular expressions of the parameter names that train.

    Axolotl's `unfrozen_parameters` wins; else `freeze.top_layers` / `freeze.fraction`
    (default: the top quarter), plus the output head and optionally the embeddings.
    """
    if recipe.unfrozen_parameters:
        return list(recipe.unfrozen_parameters)
    options = recipe.freeze
    if options and options.top_layers:
        top = min(options.top_layers, num_layers)
    else:
        fraction = options.fraction if options and options.fraction else 0.25
        top = max(1, math.ceil(num_layers * fraction))
    first = num_layers - top
    patterns = [rf".*\.layers\.({'|'.join(str(i) for i in range(first, num_layers))})\..*"]
    patterns.append(r".*\.norm\.weight$")  # the final norm feeds the head
    if options is None or options.train_lm_head:
        patterns.append(r"^lm_head\..*")
    if options and options.train_embeddings:
        patterns.append(r".*embed_tokens\..*")
    return patterns


class FreezeMethod(FineTuningMethod):
    """Only parameters matching the patterns train; the result is a full checkpoint."""

    name = "freeze"
    uses_peft = False
    mergeable = False
    not_mergeable_reason = "layer freezing writes full weights; there is nothing to merge"

    def prepare(self, model: PreTrainedModel, recipe: Recipe) -> torch.nn.Module:
        patterns = [
            re.compile(p) for p in trainable_patterns(recipe, model.config.num_hidden_layers)
        ]
        trained = 0
        for name, parameter in model.named_parameters():
            train = any(p.fullmatch(name) or p.match(name) for p in patterns)
            parameter.requires_grad_(train)
            trained += int(train)
        if trained == 0:
            raise UserError(
                f"unfrozen_parameters: no parameter name matches {[p.pattern for p in patterns]}; "
                f"names look like {next(iter(dict(model.named_parameters())))!r}"
            )
        if new_token_ids(model):
            # Rows of tokens the recipe added start untrained: the layers holding them train.
            for layer in (model.get_input_embeddings(), model.get_output_embeddings()):
                if layer is not None:
                    layer.weight.requires_grad_(True)
            note(f"{len(new_token_ids(model))} new tokens: the input embeddings and the output "
                 "head train, to learn their rows")  # fmt: skip
        if getattr(model.config, "tie_word_embeddings", False):
            # A tied head shares the embedding matrix: training one trains both.
            model.get_input_embeddings().weight.requires_grad_(
                model.get_output_embeddings().weight.requires_grad
            )
        return model
