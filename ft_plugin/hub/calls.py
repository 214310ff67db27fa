"""Calls to the Hugging Face Hub: retries for transient failures, and one error message map.

Every stage that talks to the Hub (recipes and templates by ``hf://``, base models,
publishing, the Space) goes through here, so a 401 reads the same everywhere and no
exception text (which can carry request headers) reaches the user.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from ft_plugin.errors import UserError

T = TypeVar("T")
RETRY_STATUSES = (429, 500, 502, 503, 504)
_STATUS_REASONS = {
    401: "not authorised: log in with `hf auth login` or set HF_TOKEN to a token with write access",
    403: "forbidden: the token cannot write to this repo (read-only token, or not your namespace)",
    404: "not found (or no access with this token)",
    409: "conflict: the repo was created or changed meanwhile; check it on the Hub and try again",
}


def _http_client() -> Any:
    try:  # huggingface_hub 2.x talks through httpx2; 1.x through httpx
        import httpx2 as client
    except ImportError:
        import httpx as client
    return client


def _status(exc: Any) -> int | None:
    response = getattr(exc, "response", None)
    return response.status_code if response is not None else None


def hub_reason(exc: BaseException) -> str:
    """Why a Hub call failed, in words a user can act on; never the exception's text.

    Example:
        >>> from huggingface_hub.errors import LocalEntryNotFoundError
        >>> hub_reason(LocalEntryNotFoundError("x"))
        'not in the local Hub cache and the Hub is offline or unreachable (HF_HUB_OFFLINE)'
    """
    from huggingface_hub import errors

    if isinstance(exc, errors.RepositoryNotFoundError):
        return "Hub repo not found (or no access)"
    if isinstance(exc, errors.RevisionNotFoundError):
        return "revision not found"
    if isinstance(exc, errors.LocalEntryNotFoundError):  # before its base EntryNotFoundError
        return "not in the local Hub cache and the Hub is offline or unreachable (HF_HUB_OFFLINE)"
    if isinstance(exc, errors.EntryNotFoundError):
        return "no such file in the repo"
    status = _status(exc)
    if status is None:
        return f"{type(exc).__name__} (is the Hub reachable? is HF_HUB_OFFLINE set?)"
    return _STATUS_REASONS.get(status, f"Hub error {status}")


def hub_error(exc: BaseException, what: str) -> UserError:
    """The one-line ``UserError`` for a Hub exception: what failed and why (``hub_reason``).

    Example:
        >>> from huggingface_hub.errors import LocalEntryNotFoundError
        >>> str(hub_error(LocalEntryNotFoundError("x"), "hf://o/r/recipe.yaml"))
        'hf://o/r/recipe.yaml: not in the local Hub cache and the Hub is offline or unreachable (HF_HUB_OFFLINE)'
    """
    return UserError(f"{what}: {hub_reason(exc)}")


def hub_exceptions() -> tuple[type[BaseException], ...]:
    """What a Hub download can raise that ``hub_error`` explains (``except hub_exceptions()``)."""
    from huggingface_hub import errors

    return (errors.HfHubHTTPError, errors.EntryNotFoundError, errors.LocalEntryNotFoundError)


def _transient(exc: BaseException) -> bool:
    from huggingface_hub.errors import HfHubHTTPError

    client = _http_client()
    if isinstance(exc, HfHubHTTPError):
        return _status(exc) in RETRY_STATUSES
    return isinstance(exc, client.TimeoutException | client.TransportError)


def with_retries(
    call: Callable[[], T], *, what: str, attempts: int = 4, base_delay: float = 1.0
) -> T:
    """Run ``call``, retrying HTTP 429/5xx and timeouts with exponential backoff (tenacity).

    Hub errors that are not transient become a one-line ``UserError`` at once.

    Example:
        >>> with_retries(lambda: 42, what="read the repo")
        42
    """
    import tenacity
    from huggingface_hub.errors import HfHubHTTPError

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_exponential(multiplier=base_delay, min=base_delay),
        retry=tenacity.retry_if_exception(_transient),
        reraise=True,
    )
    try:
        return retrying(call)
    except HfHubHTTPError as exc:
        raise hub_error(exc, what) from None
    except Exception as exc:
        if _transient(exc):
            raise UserError(
                f"{what}: the Hub did not answer ({type(exc).__name__}) after {attempts} tries"
            ) from None
        raise
