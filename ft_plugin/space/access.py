"""Who may do what in the Space, decided once, below the page and the API.

Visitors compare, rate and evaluate within the owner's caps; training (with its data
step), stopping, resuming, seeing the trainings, serving a new run and publishing belong
to the owner. How the Space knows its owner depends on how it runs (:func:`access_for`):

- ``huggingface``: a Hugging Face Space with sign-in (``hf_oauth: true`` in its card): the
  signed-in user is an owner when they are the Space's author (``SPACE_AUTHOR_NAME``) or
  listed under ``admins:`` in config.yaml;
- ``password``: ``--auth USER:PASSWORD`` (or ``FT_PLUGIN_SPACE_AUTH``), Gradio's own
  login: every account is an owner, or only those under ``admins:`` when it names some;
- ``local``: launched on a loopback address with neither, not on a Space, not shared:
  the machine's own user, who owns it;
- ``off``: deployed with neither: nobody trains or publishes, and the refusal says how
  to turn it on.

Example:
    >>> access = access_for(host="0.0.0.0", share=False, environ={})
    >>> access.mode, access.caller(None).owner
    ('off', False)
    >>> access_for(host="127.0.0.1", share=False, environ={}).caller(None).owner
    True
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ft_plugin.errors import UserError

AUTH_ENV = "FT_PLUGIN_SPACE_AUTH"  # USER:PASSWORD, as --auth
# What each owner action is called in a refusal ("sign in as the Space's owner to train").
OWNER_ACTIONS = {
    "train": "train",
    "stop": "stop a training",
    "resume": "resume a training",
    "status": "see the trainings",
    "serve": "serve a new run",
    "publish": "publish a run",
    "export": "export a run",
}
HOW_TO_TURN_ON = (
    "turn on Hugging Face sign-in (hf_oauth: true in the Space's README.md) or start it "
    f"with --auth USER:PASSWORD ({AUTH_ENV})"
)


class Forbidden(UserError):
    """A request the caller may not make; one line, and nothing was started or written."""


@dataclass(frozen=True)
class Caller:
    """Who sent a request: a user name (None: anonymous) and whether they own the Space."""

    name: str | None
    owner: bool


OWNER = Caller("owner", True)  # for code that acts as the owner (launchers, tests)
VISITOR = Caller(None, False)


@dataclass(frozen=True)
class Access:
    """The Space's rule of who owns it; :meth:`require_owner` is the one check."""

    mode: str  # huggingface | password | local | off
    owners: frozenset[str] = frozenset()
    logins: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # Gradio's auth=
    training: bool = True  # config.yaml `train: false` turns training and publishing off
    mock_sign_in: bool = False  # Gradio's local stand-in for Hugging Face sign-in

    def caller(self, username: str | None) -> Caller:
        """The caller behind a request's user name (Gradio login or Hugging Face sign-in)."""
        if self.mode == "local":
            return Caller(username or "local", True)
        return Caller(username, bool(username) and username in self.owners)

    def require_owner(self, caller: Caller, action: str) -> None:
        """Refuse ``action`` (a key of ``OWNER_ACTIONS``) unless ``caller`` owns the Space."""
        doing = OWNER_ACTIONS[action]
        if not self.training:
            raise Forbidden(
                f"training is off in this Space (train: false in its config.yaml): "
                f"nobody can {doing} here"
            )
        if self.mode == "off":
            raise Forbidden(f"only the Space's owner can {doing}, and sign-in is off: "
                            f"{HOW_TO_TURN_ON}")  # fmt: skip
        if not caller.owner:
            raise Forbidden(f"sign in as the Space's owner to {doing}")

    def publish_namespaces(self) -> list[str] | None:
        """Where runs may be published: the owners' own namespaces on a Space with
        Hugging Face sign-in; elsewhere (None) wherever the token may write."""
        return sorted(self.owners) if self.mode == "huggingface" else None

    def describe(self) -> str:
        """One line for the server's log: how owners are known (never a password)."""
        owners = ", ".join(sorted(self.owners)) or "nobody"
        return {
            "huggingface": f"Hugging Face sign-in; owners: {owners}"
            + (" (local stand-in: do not deploy)" if self.mock_sign_in else ""),
            "password": f"password login; owners: {owners}",
            "local": "local launch on loopback: the machine's user owns the Space",
            "off": f"training and publishing off: {HOW_TO_TURN_ON}",
        }[self.mode]


def is_loopback(host: str) -> bool:
    """True for an address only this machine reaches.

    Example:
        >>> is_loopback("127.0.0.1"), is_loopback("localhost"), is_loopback("0.0.0.0")
        (True, True, False)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def parse_login(text: str, source: str) -> tuple[str, str]:
    """``USER:PASSWORD`` as a pair; the refusal never repeats the password.

    Example:
        >>> parse_login("owner:s3cret-pass", "--auth")
        ('owner', 's3cret-pass')
    """
    user, sep, password = str(text).partition(":")
    if not sep or not user.strip() or not password:
        raise UserError(f"{source}: expected USER:PASSWORD (a user name, a colon, a password)")
    if len(password) < 8:
        raise UserError(f"{source}: the password of {user.strip()} is shorter than 8 characters")
    return user.strip(), password


def _on_a_space_with_sign_in(environ: Mapping[str, str]) -> bool:
    # Hugging Face sets these for a Space whose card says hf_oauth: true.
    return bool(environ.get("SPACE_ID") and environ.get("OAUTH_CLIENT_ID")
                and environ.get("OAUTH_CLIENT_SECRET"))  # fmt: skip


def access_for(
    *,
    host: str,
    share: bool,
    environ: Mapping[str, str],
    auth: Sequence[str] = (),
    admins: Sequence[str] = (),
    training: bool = True,
    mock_sign_in: bool = False,
) -> Access:
    """The Space's :class:`Access` from how it is launched and configured.

    ``auth``: ``USER:PASSWORD`` logins (``FT_PLUGIN_SPACE_AUTH`` adds one); ``admins``:
    the owners' user names (config.yaml ``admins:``); ``mock_sign_in``: Gradio's local
    stand-in for Hugging Face sign-in, for development on loopback only (it signs anyone
    in as this machine's Hugging Face user).
    """
    deployed = bool(environ.get("SPACE_ID")) or share or not is_loopback(host)
    logins = [parse_login(text, "--auth") for text in auth]
    if environ.get(AUTH_ENV):
        logins.append(parse_login(environ[AUTH_ENV], AUTH_ENV))
    admins = frozenset(str(name).strip() for name in admins if str(name).strip())
    sign_in = _on_a_space_with_sign_in(environ) or mock_sign_in
    if mock_sign_in and deployed:
        raise UserError(
            "the local stand-in for Hugging Face sign-in signs anyone in as this machine's "
            "user: serve it on 127.0.0.1 only (a Space uses the real sign-in)"
        )
    if logins and sign_in:
        raise UserError(f"choose one way to sign in: Hugging Face sign-in or {AUTH_ENV}/--auth")
    if logins:
        owners = admins or frozenset(user for user, _ in logins)
        return Access("password", owners, tuple(logins), training)
    if sign_in:
        owners = admins | {environ["SPACE_AUTHOR_NAME"]} if environ.get("SPACE_AUTHOR_NAME") else admins  # fmt: skip
        if not owners:
            raise UserError(
                "Hugging Face sign-in: no owner known; set SPACE_AUTHOR_NAME or list the "
                "owners under admins: in config.yaml"
            )
        return Access("huggingface", frozenset(owners), (), training, mock_sign_in)
    return Access("off" if deployed else "local", admins, (), training)
