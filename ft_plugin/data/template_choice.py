"""Chat templates by Axolotl's names (``chat_template: llama3``, ``qwen_25``, …): the Jinja
files in ``chat_templates/`` (copied from Axolotl 0.21.0, see the NOTICE there), or
``tokenizer_default``, ``tokenizer_default_fallback_NAME``, ``jinja`` with
``chat_template_jinja`` (a string or a file). :func:`resolve_chat_template`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ft_plugin.config.schema.datasets import CHAT_TEMPLATE_NAMES, FALLBACK_PREFIX
from ft_plugin.errors import DataError

TEMPLATES_DIR = Path(__file__).resolve().parent / "chat_templates"
# Axolotl's default role names; `roles:` replaces them (a name it does not list stays as it is).
_JINJA_MARKS = ("{{", "{%")


def template_names() -> list[str]:
    """The chat templates shipped here, by Axolotl's names.

    Example:
        >>> {"chatml", "llama3", "qwen_25", "gemma3", "mistral_v1", "phi_3"} <= set(template_names())
        True
    """
    return sorted(path.stem for path in TEMPLATES_DIR.glob("*.jinja"))


def template_text(name: str) -> str:
    """The Jinja text of Axolotl's template ``name``.

    Example:
        >>> "<|im_start|>" in template_text("chatml")
        True
    """
    path = TEMPLATES_DIR / f"{name}.jinja"
    if name not in CHAT_TEMPLATE_NAMES or not path.is_file():
        raise DataError(f"chat_template: no template named {name!r}")
    # the file's own final newline is not the template's: it would end every render
    return path.read_text(encoding="utf-8").removesuffix("\n")


def read_jinja(value: str, key: str = "chat_template_jinja") -> str:
    """A Jinja template given as text, or as the path of a file holding it (Axolotl's rule)."""
    if any(mark in value for mark in _JINJA_MARKS):
        return value
    path = Path(value).expanduser()
    if not path.is_file():
        raise DataError(f"{key}: {value}: neither a Jinja template nor a file holding one")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{key}: {value}: cannot read: {exc}") from None


def _own_template(tokenizer: Any) -> str | None:
    own = getattr(tokenizer, "chat_template", None)
    if isinstance(own, dict):  # several named templates: the default one
        own = own.get("default")
    return own or None


def resolve_chat_template(choice: str | None, jinja: str | None, tokenizer: Any = None) -> str:
    """The Jinja text that ``chat_template: CHOICE`` (and ``chat_template_jinja``) means for
    this tokenizer: a name of Axolotl's, ``tokenizer_default`` (the model's own; ChatML when
    it has none, as ft-plugin always did), ``tokenizer_default_fallback_NAME``, ``jinja``
    (or empty with ``chat_template_jinja``), or a Jinja string.

    ``models.load_tokenizer`` sets the tokenizer's template from this; the data stage
    renders ``chat_template`` rows with it.

    Example:
        >>> resolve_chat_template("llama3", None).count("<|start_header_id|>") > 0
        True
        >>> resolve_chat_template(None, "{{ messages[0]['content'] }}")
        "{{ messages[0]['content'] }}"
    """
    if choice is None and jinja:
        choice = "jinja"
    if choice == "jinja":
        if not jinja:
            raise DataError("chat_template: jinja needs chat_template_jinja")
        return read_jinja(jinja)
    own = _own_template(tokenizer)
    if choice in (None, "tokenizer_default"):
        return own or template_text("chatml")
    if choice.startswith(FALLBACK_PREFIX):
        return own or template_text(choice[len(FALLBACK_PREFIX) :])
    if choice in CHAT_TEMPLATE_NAMES:
        return template_text(choice)
    if any(mark in choice for mark in _JINJA_MARKS):
        return choice
    raise DataError(f"chat_template: unknown template {choice!r}")
