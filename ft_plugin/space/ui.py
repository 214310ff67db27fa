"""What every tab shares: who is asking, errors shown as one line, the launch settings,
the page style."""

import functools
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import gradio as gr

from ft_plugin.errors import UserError

from .access import Access, Caller
from .redaction import redact
from .settings import Limits

LOG = logging.getLogger("ft_plugin.space")
CSS = """
.answer textarea { font-size: 0.95rem; }
.stats { opacity: 0.8; font-size: 0.85rem; }
"""


class Ui(SimpleNamespace):
    """The page's components, by tab (``ui.compare.prompt``, ``ui.rate.answer_a``, …), and
    what the tabs share: ``demo``, ``adapter`` (dropdown), ``pair`` (the blind pair, kept
    server-side), ``model_job`` (the queue settings of model work) and ``tab_objects``
    (the ``gr.Tab`` of each tab id, for their select events)."""


def shown_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """User errors become a one-line gr.Error (no secret, no server path); anything else
    a generic message (logged in full)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except gr.Error:
            raise
        except UserError as exc:
            message = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise gr.Error(message, print_exception=False) from None
        except Exception:
            LOG.exception("unexpected error in %s", fn.__name__)
            raise gr.Error(
                "Something went wrong on the server; the details are in its log.",
                print_exception=False,
            ) from None

    return wrapper


def caller_of(access: Access, request: gr.Request | None, profile: Any) -> Caller:
    """The request's :class:`Caller`: its Hugging Face sign-in (``gr.OAuthProfile``) on a
    Space with sign-in, else its Gradio login (``request.username``)."""
    if access.mode == "huggingface":
        return access.caller(getattr(profile, "username", None))
    return access.caller(getattr(request, "username", None))


def session_of(request: gr.Request | None) -> str | None:
    """The page's (or API client's) session, which a generated pair belongs to."""
    return getattr(request, "session_hash", None)


def launch_kwargs(limits: Limits | None = None, access: Access | None = None) -> dict[str, Any]:
    """``launch()`` settings the app expects (theme and css moved to launch in Gradio 6),
    with Gradio's login when the Space has ``--auth`` accounts."""
    limits = limits or Limits()
    # Gradio's upload route serves everyone who reaches the page: anonymous visitors (on a
    # Space with sign-in, or with training off) get the Evaluate tab's cap.
    signed_in_only = access is not None and access.mode in ("local", "password")
    upload_mb = max(limits.max_upload_mb, limits.max_train_upload_mb if signed_in_only else 0)
    kwargs = {
        "show_error": False,
        "max_file_size": f"{upload_mb}mb",
        "theme": gr.themes.Soft(),
        "css": CSS,
        "ssr_mode": False,
    }
    if access is not None and access.logins:
        kwargs["auth"] = list(access.logins)
        kwargs["auth_message"] = "Sign in to this Space (its owner gave you an account)."
    return kwargs
