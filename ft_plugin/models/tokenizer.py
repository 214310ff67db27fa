"""The run's tokenizer: the base's, with the recipe's chat template and tokens (Axolotl's
`special_tokens`, `tokens`, `eot_tokens`, `added_tokens_overrides`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ft_plugin.data.template_choice import resolve_chat_template
from ft_plugin.errors import UserError

from .notes import note
from .resolution import ResolvedModel

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

    from ft_plugin.config import Recipe

NEW_TOKEN_IDS = "ft_plugin_new_token_ids"  # model / tokenizer attribute: rows the recipe added
LLAMA_TOKENIZERS = ("LlamaTokenizer", "LlamaTokenizerFast", "CodeLlamaTokenizer",
                    "CodeLlamaTokenizerFast")  # fmt: skip


def load_tokenizer(
    recipe: Recipe, resolved: ResolvedModel, *, quiet: bool = False
) -> PreTrainedTokenizerBase:
    """The tokenizer with the recipe's tokens added, a pad token distinct from EOS where
    possible and the chat template set.

    The ids the recipe added or renamed are kept on it as ``NEW_TOKEN_IDS`` (see
    :func:`new_token_ids`). ``quiet``: no lines about the tokenizer keys (a second load).
    """
    say = (lambda line: None) if quiet else note
    source = recipe.tokenizer_config or resolved.path
    kwargs: dict[str, Any] = {
        "revision": resolved.revision,
        "trust_remote_code": recipe.trust_remote_code,
    }
    if recipe.tokenizer_legacy is not None:
        kwargs["legacy"] = recipe.tokenizer_legacy
    if recipe.tokenizer_use_fast is False:
        say("tokenizer_use_fast: false: transformers 5 has one tokenizer per model, the fast "
             "(tokenizers library) one; it loads that")  # fmt: skip
    tokenizer_class, mismatch = tokenizer_class_for(recipe, source, resolved.revision)
    if mismatch:
        say(mismatch)
    if recipe.added_tokens_overrides:
        tokenizer = _renamed_tokenizer(
            tokenizer_class, source, kwargs, recipe.added_tokens_overrides
        )
    else:
        tokenizer = tokenizer_class.from_pretrained(source, **kwargs)
    renamed = sorted(recipe.added_tokens_overrides or {})
    setattr(tokenizer, NEW_TOKEN_IDS, sorted({*renamed, *add_recipe_tokens(tokenizer, recipe)}))
    if tokenizer.pad_token is None or tokenizer.pad_token_id == tokenizer.eos_token_id:
        tokenizer.pad_token = _pad_token_for(tokenizer)
    # Axolotl's template names, tokenizer_default(_fallback_NAME), jinja, or a Jinja string
    tokenizer.chat_template = resolve_chat_template(
        recipe.chat_template, recipe.chat_template_jinja, tokenizer
    )
    return tokenizer


def add_recipe_tokens(tokenizer: PreTrainedTokenizerBase, recipe: Recipe) -> list[int]:
    """Add `special_tokens`, `tokens` and `eot_tokens` to ``tokenizer``, in Axolotl's order
    (named special tokens, new tokens, additional special tokens), and return the ids of
    those that were not in its vocabulary.

    End-of-turn tokens are added as special tokens when new, so that each is one token
    (Axolotl asks the user to add them under `tokens:` instead).
    """
    from tokenizers import AddedToken

    def exact(text: str, special: bool) -> AddedToken:  # never stripped or normalised
        return AddedToken(text, rstrip=False, lstrip=False, normalized=False, special=special)

    before = tokenizer.get_vocab()
    special = recipe.special_tokens
    named = {
        key: value
        for key in ("bos_token", "eos_token", "pad_token", "unk_token")
        if special is not None and (value := getattr(special, key))
    }
    if named:
        tokenizer.add_special_tokens({key: exact(value, True) for key, value in named.items()})
        llama = type(tokenizer).__name__ in LLAMA_TOKENIZERS
        if llama and {"bos_token", "eos_token"} <= set(named):
            tokenizer.update_post_processor()  # the BOS/EOS its post-processor adds
    if recipe.tokens:
        tokenizer.add_tokens([exact(token, False) for token in recipe.tokens])
    extra = list(special.additional_special_tokens or []) if special is not None else []
    if extra:
        tokenizer.add_special_tokens({"additional_special_tokens": extra})
    new_ends = [token for token in recipe.eot_tokens or [] if token not in tokenizer.get_vocab()]
    if new_ends:
        tokenizer.add_special_tokens(
            {"extra_special_tokens": new_ends}, replace_extra_special_tokens=False
        )
    asked = [*named.values(), *(recipe.tokens or []), *extra, *(recipe.eot_tokens or [])]
    vocab = tokenizer.get_vocab()
    return sorted({vocab[token] for token in asked if token not in before and token in vocab})


def _renamed_tokenizer(tokenizer_class: Any, source: str, kwargs: dict[str, Any],
                       overrides: dict[int, str]) -> PreTrainedTokenizerBase:  # fmt: skip
    """`added_tokens_overrides`: the tokenizer with reserved added tokens renamed.

    As Axolotl does: the saved files' added tokens (and their vocabulary entries) get the
    new text, and the tokenizer loads back from the edited copy.
    """
    original = tokenizer_class.from_pretrained(source, **kwargs)
    reserved = original.added_tokens_decoder
    for token_id in overrides:
        if token_id not in reserved:
            raise UserError(
                f"added_tokens_overrides: token id {token_id} is not an added token of this "
                f"tokenizer ({len(reserved)} added tokens: ids {min(reserved, default=0)}-"
                f"{max(reserved, default=0)}); add new text with tokens: instead"
            )
    with tempfile.TemporaryDirectory(prefix="ft-plugin-tokenizer-") as folder:
        original.save_pretrained(folder)
        texts = {str(reserved[token_id]): text for token_id, text in overrides.items()}
        _rename_in_files(Path(folder), overrides, texts)
        renamed = tokenizer_class.from_pretrained(folder, **{**kwargs, "revision": None})
    renamed.name_or_path = original.name_or_path
    return renamed


def _rename_in_files(folder: Path, overrides: dict[int, str], texts: dict[str, str]) -> None:
    """Give the added tokens ``overrides`` names (old text -> new: ``texts``) their new text
    in a saved tokenizer: its added tokens, vocabulary, and special-token settings."""
    config_path, backend_path = folder / "tokenizer_config.json", folder / "tokenizer.json"
    if config_path.is_file():
        config = json.loads(config_path.read_text(encoding="utf-8"))
        for token_id, text in overrides.items():
            entry = (config.get("added_tokens_decoder") or {}).get(str(token_id))
            if entry is not None:
                entry["content"] = text
        for key, value in config.items():  # the same token named as a special one
            if isinstance(value, str) and value in texts:
                config[key] = texts[value]
            elif isinstance(value, list):
                config[key] = [texts.get(item, item) if isinstance(item, str) else item
                               for item in value]  # fmt: skip
        config_path.write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    if backend_path.is_file():
        backend = json.loads(backend_path.read_text(encoding="utf-8"))
        for entry in backend.get("added_tokens", []):
            if entry["id"] in overrides:
                entry["content"] = overrides[entry["id"]]
        vocab = (backend.get("model") or {}).get("vocab")
        if isinstance(vocab, dict):
            old = {token_id: text for text, token_id in vocab.items() if token_id in overrides}
            for token_id, text in old.items():
                del vocab[text]
                vocab[overrides[token_id]] = token_id
        backend_path.write_text(json.dumps(backend, ensure_ascii=False), encoding="utf-8")


def new_token_ids(model_or_tokenizer: Any) -> list[int]:
    """Token ids the recipe added (or renamed): their embedding rows start untrained.

    Set by :func:`load_tokenizer` on the tokenizer and by :func:`load_model` on the model,
    for methods that must make those rows trainable.
    """
    return list(getattr(model_or_tokenizer, NEW_TOKEN_IDS, None) or [])


def tokenizer_class_for(
    recipe: Recipe, source: str, revision: str | None
) -> tuple[Any, str | None]:
    """The tokenizer class `tokenizer_type` names, and a line when it cannot be used.

    A tokenizer saved as one class would split text differently when loaded as another
    (a GPT-2 style vocabulary read as a SentencePiece one), so a named class that is not
    the one the tokenizer was saved as gives way to the saved one (AutoTokenizer).
    """
    import transformers
    from transformers import AutoTokenizer
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    name = recipe.tokenizer_type
    if not name or name == "AutoTokenizer":
        return AutoTokenizer, None
    named = getattr(transformers, name)
    saved = get_tokenizer_config(source, revision=revision).get("tokenizer_class")
    if not saved or getattr(transformers, saved, None) is named:
        return named, None
    return AutoTokenizer, (
        f"tokenizer_type: {name} would split text differently from the tokenizer of "
        f"{recipe.tokenizer_config or recipe.base_model}, saved as {saved}: it loads as {saved}"
    )


def _pad_token_for(tokenizer: PreTrainedTokenizerBase) -> str:
    """A pad token that is not EOS: padding with EOS would mask the EOS labels to learn."""
    vocab = tokenizer.get_vocab()
    for candidate in ("<|endoftext|>", "<|finetune_right_pad_id|>", "<|pad|>", "<pad>"):
        if candidate in vocab and vocab[candidate] != tokenizer.eos_token_id:
            return candidate
    if tokenizer.unk_token is not None and tokenizer.unk_token_id != tokenizer.eos_token_id:
        return tokenizer.unk_token
    return tokenizer.eos_token
