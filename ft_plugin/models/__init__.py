"""The model stage: resolving `base_model` (Hub id, local folder, `embedded:`), and loading
the run's tokenizer and model.

- ``resolution.py``: `base_model` to a local folder (the embedded model converted once);
- ``tokenizer.py``: the tokenizer with the recipe's chat template and added tokens;
- ``loading.py``: attention, config overrides, model class, weights, resized embeddings;
- ``kernels.py``: Axolotl's kernel plugins (Liger, Cut Cross Entropy);
- ``notes.py``: one line for the user, from the main process only.

The names below are the stage's public API (``from ft_plugin import models;
models.load_model(...)``).
"""

from .kernels import kernel_plugin_notes
from .loading import (
    apply_config_overrides,
    base_config,
    choose_attention,
    fit_embeddings,
    load_model,
    model_class_for,
    packing_fallback,
)
from .notes import note
from .resolution import (
    EMBEDDED_MODELS,
    EMBEDDED_PREFIX,
    EmbeddedModel,
    ResolvedModel,
    base_tokenizer,
    cache_dir,
    materialize_embedded,
    resolve_base_model,
)
from .tokenizer import NEW_TOKEN_IDS, add_recipe_tokens, load_tokenizer, new_token_ids

__all__ = [
    "EMBEDDED_MODELS",
    "EMBEDDED_PREFIX",
    "NEW_TOKEN_IDS",
    "EmbeddedModel",
    "ResolvedModel",
    "add_recipe_tokens",
    "apply_config_overrides",
    "base_config",
    "base_tokenizer",
    "cache_dir",
    "choose_attention",
    "fit_embeddings",
    "kernel_plugin_notes",
    "load_model",
    "load_tokenizer",
    "materialize_embedded",
    "model_class_for",
    "new_token_ids",
    "note",
    "packing_fallback",
    "resolve_base_model",
]
