"""The methods registry: built-ins, ``register_method``, and the ``mvmr.methods`` entry points."""

from __future__ import annotations

from mvmr.errors import ConfigError
from mvmr.methods.base import Method
from mvmr.plugins import plugin_entry_points

__all__ = ["register_method", "get_method", "available_methods"]

_METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    """Make ``method`` selectable as ``method: <method.name>``; returns it (usable at module level)."""
    if not isinstance(method, Method):
        raise TypeError(f"register_method expects a mvmr.methods.Method, got {type(method).__name__}")
    known = _METHODS.get(method.name)
    if known is not None and known is not method:
        raise ValueError(f"method {method.name!r} is already registered")
    _METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    """The method registered as ``name`` (looking in installed ``mvmr.methods`` entry points too)."""
    if name not in _METHODS:
        ep = plugin_entry_points("mvmr.methods").get(name)
        if ep is not None:
            loaded = ep.load()
            register_method(loaded if isinstance(loaded, Method) else Method(name=name, **loaded))
    try:
        return _METHODS[name]
    except KeyError:
        raise ConfigError(f"method: unknown method {name!r}; available: {', '.join(available_methods())}") from None


def available_methods() -> list[str]:
    """Names of the registered and installed methods, sorted."""
    return sorted(set(_METHODS) | set(plugin_entry_points("mvmr.methods")))
