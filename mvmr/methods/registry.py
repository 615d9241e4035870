"""The methods registry: built-ins, ``register_method``, and the ``mvmr.methods`` entry points."""

from __future__ import annotations

from typing import Any

from mvmr.errors import ConfigError
from mvmr.methods.base import Method
from mvmr.plugins import Registry

__all__ = ["METHODS", "register_method", "get_method", "available_methods"]


def _as_method(name: str, loaded: Any) -> Method:
    """An entry point's object: a Method, or the keyword arguments of one."""
    return loaded if isinstance(loaded, Method) else Method(name=name, **loaded)


#: Methods by name (``method: <name>`` in a config).
METHODS: Registry[Method] = Registry("method", "mvmr.methods", adapt=_as_method)


def register_method(method: Method) -> Method:
    """Make ``method`` selectable as ``method: <method.name>``; returns it (usable at module level)."""
    if not isinstance(method, Method):
        raise TypeError(f"register_method expects a mvmr.methods.Method, got {type(method).__name__}")
    return METHODS.register(method.name, method)


def get_method(name: str) -> Method:
    """The method registered as ``name`` (looking in installed ``mvmr.methods`` entry points too)."""
    try:
        return METHODS.get(name)
    except ConfigError as err:
        raise ConfigError(f"method: {err}") from None


def available_methods() -> list[str]:
    """Names of the registered and installed methods, sorted."""
    return METHODS.names()
