"""Teach PEFT the ``BOTTLENECK`` method: the one place that touches PEFT's internals.

PEFT's public hook for new methods, :func:`peft.utils.register_peft_method`, only accepts
names that already exist in its closed :class:`peft.utils.peft_types.PeftType` enum, and
``adapter_config.json`` stores the method as ``"peft_type": "<PeftType value>"``. So we add
one member, ``PeftType.BOTTLENECK = "BOTTLENECK"``, to that enum at import time and then
register config/tuner/prefix through the public function. After that, PEFT's own
``get_peft_model``, ``save_pretrained``, ``PeftModel.from_pretrained``, ``load_adapter``,
``set_adapter`` and ``disable_adapter`` handle bottleneck adapters like any builtin method.

Python enums cannot be extended through a public API, so the member is built with the
same machinery the ``enum`` module uses while creating a class (``enum._proto_member``).
Everything that depends on that, or on the shape of ``register_peft_method``, is checked
right after it runs; if a Python or PEFT upgrade breaks any of it, importing
``ft_plugin.methods.bottleneck`` raises :class:`BottleneckRegistrationError` naming what
broke, instead of failing later with an obscure ``KeyError`` inside PEFT.

Both steps are idempotent: importing twice, reloading, or calling :func:`register` again
is a no-op. If a future PEFT ships its *own* ``BOTTLENECK`` method, registration refuses
to overwrite it (also with :class:`BottleneckRegistrationError`).
"""

from __future__ import annotations

import enum
import inspect
import json
from typing import Any

NAME = "bottleneck"
PEFT_TYPE_VALUE = "BOTTLENECK"
PREFIX = "bottleneck_"


class BottleneckRegistrationError(RuntimeError):
    """PEFT (or Python) changed so that the bottleneck method can no longer be registered."""


def _fail(what: str, cause: BaseException | None = None) -> BottleneckRegistrationError:
    import peft

    return BottleneckRegistrationError(
        f"Cannot register the bottleneck adapter method with PEFT {peft.__version__}: {what}. "
        "ft_plugin.methods.bottleneck extends peft.utils.peft_types.PeftType with a "
        f"{PEFT_TYPE_VALUE!r} member and calls peft.utils.register_peft_method; this PEFT "
        "version no longer supports that (see ft_plugin/methods/bottleneck/registration.py). "
        "Pin peft to a known-good version (tested: 0.21.x) or update registration.py."
        + (f" Underlying error: {type(cause).__name__}: {cause}" if cause else "")
    )


def extend_str_enum(enum_cls: type[enum.Enum], value: str) -> Any:
    """Add member ``value`` (named ``value``) to the str-valued ``enum_cls``; idempotent.

    Raises :class:`BottleneckRegistrationError` when the running Python's ``enum`` module
    no longer supports this, or when the result does not behave like a native member.
    """
    existing = enum_cls.__members__.get(value)
    if existing is not None:
        return existing

    if not (issubclass(enum_cls, str) and issubclass(enum_cls, enum.Enum)):
        raise _fail(f"{enum_cls.__name__} is no longer a str-valued Enum")
    proto_cls = getattr(enum, "_proto_member", None)
    if proto_cls is None or not hasattr(proto_cls, "__set_name__"):
        raise _fail("this Python's enum module has no _proto_member to build members with")
    before = list(enum_cls)
    try:
        # What EnumType.__new__ does for each member of a class body: put the proto
        # member on the class, then let __set_name__ turn it into a real member
        # (creating it, appending to _member_names_, _member_map_, _value2member_map_).
        proto = proto_cls(value)
        type.__setattr__(enum_cls, value, proto)
        proto.__set_name__(enum_cls, value)
    except Exception as exc:
        raise _fail(f"adding {value!r} to {enum_cls.__name__} raised", exc) from exc

    member = enum_cls.__members__.get(value)
    if member is None:
        raise _fail(f"the new member did not appear in {enum_cls.__name__}.__members__")
    _check_member(enum_cls, member, value, before)
    return member


def _check_member(enum_cls: type[enum.Enum], member: Any, value: str, before: list) -> None:
    """Verify every way PEFT looks a method up by its type resolves to ``member``."""
    checks = {
        "isinstance(member, Enum)": lambda: isinstance(member, enum_cls),
        "Enum.NAME is member": lambda: getattr(enum_cls, value) is member,
        "Enum(value) is member": lambda: enum_cls(value) is member,
        "Enum[name] is member": lambda: enum_cls[value] is member,
        "member in list(Enum)": lambda: member in list(enum_cls),
        "value in list(Enum)": lambda: value in list(enum_cls),
        "member == value": lambda: member == value and member.value == value,
        "dict lookup by plain str": lambda: {member: 1}.get(value) == 1,
        "json.dumps(member)": lambda: json.dumps(member) == json.dumps(value),
        "existing members untouched": lambda: (
            list(enum_cls)[: len(before)] == before and all(enum_cls(m.value) is m for m in before)
        ),
    }
    for label, check in checks.items():
        try:
            ok = check()
        except Exception as exc:  # reported with context below
            raise _fail(f"check {label!r} raised", exc) from exc
        if not ok:
            raise _fail(f"check {label!r} failed after extending {enum_cls.__name__}")


def ensure_peft_type() -> Any:
    """Return ``PeftType.BOTTLENECK``, adding it to PEFT's enum first if it is missing."""
    try:
        from peft.utils.peft_types import PeftType
    except ImportError as exc:
        raise _fail("peft.utils.peft_types.PeftType is gone", exc) from exc
    return extend_str_enum(PeftType, PEFT_TYPE_VALUE)


def register(config_cls: type, model_cls: type) -> None:
    """Register ``config_cls``/``model_cls`` as PEFT method ``bottleneck`` (idempotent)."""
    peft_type = ensure_peft_type()
    try:
        from peft.mapping import (
            PEFT_TYPE_TO_CONFIG_MAPPING,
            PEFT_TYPE_TO_PREFIX_MAPPING,
            PEFT_TYPE_TO_TUNER_MAPPING,
        )
        from peft.utils import register_peft_method
    except ImportError as exc:
        raise _fail("peft.mapping / peft.utils.register_peft_method moved", exc) from exc

    params = inspect.signature(register_peft_method).parameters
    missing = {"name", "config_cls", "model_cls", "prefix"} - set(params)
    if missing:
        raise _fail(f"register_peft_method lost its parameter(s) {sorted(missing)}")

    registered_config = PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type)
    registered_model = PEFT_TYPE_TO_TUNER_MAPPING.get(peft_type)
    if registered_config is not None or registered_model is not None:
        # Same classes by qualified name, so importlib.reload of our modules stays a no-op.
        ours = {_qualname(config_cls), _qualname(model_cls)}
        theirs = {_qualname(registered_config), _qualname(registered_model)}
        if ours == theirs:
            PEFT_TYPE_TO_CONFIG_MAPPING[peft_type] = config_cls
            PEFT_TYPE_TO_TUNER_MAPPING[peft_type] = model_cls
            return
        raise _fail(
            f"PEFT already has a {PEFT_TYPE_VALUE} method ({sorted(theirs)}); refusing to replace it"
        )

    try:
        register_peft_method(name=NAME, config_cls=config_cls, model_cls=model_cls, prefix=PREFIX)
    except Exception as exc:
        raise _fail("register_peft_method rejected the method", exc) from exc

    if (
        PEFT_TYPE_TO_CONFIG_MAPPING.get(peft_type) is not config_cls
        or PEFT_TYPE_TO_TUNER_MAPPING.get(peft_type) is not model_cls
        or PEFT_TYPE_TO_PREFIX_MAPPING.get(peft_type) != PREFIX
    ):
        raise _fail("register_peft_method returned but the PEFT mappings do not hold our classes")


def _qualname(cls: Any) -> str:
    return f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', '?')}"
