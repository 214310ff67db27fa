"""What every tab shares: errors shown as one line, the launch settings, the page style."""

import functools
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr

from ft_plugin.errors import UserError

from .settings import Limits

LOG = logging.getLogger("ft_plugin.space")
CSS = """
.answer textarea { font-size: 0.95rem; }
.stats { opacity: 0.8; font-size: 0.85rem; }
"""


class Ui(SimpleNamespace):
    """The page's components, by tab (``ui.compare.prompt``, ``ui.rate.answer_a``, …), and
    what the tabs share: ``demo``, ``adapter`` (dropdown), ``pair`` (the blind pair, kept
    server-side) and ``model_job`` (the queue slot of model work)."""


def shown_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors become a one-line gr.Error; anything else a generic message (logged)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        except Exception:
            LOG.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                "Something went wrong on the server; the details are in its log.",
                print_exception=False,
            ) from None

    return wrapper


def launch_kwargs(limits: Limits | None = None) -> dict[str, Any]:
    """``launch()`` settings the app expects (theme and css moved to launch in Gradio 6)."""
    limits = limits or Limits()
    return {
        "show_error": False,
        "max_file_size": f"{limits.max_upload_mb}mb",
        "theme": gr.themes.Soft(),
        "css": CSS,
        "ssr_mode": False,
    }
