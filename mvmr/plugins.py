"""Plugins: representations, teachers and methods that live in a user's own package.

Two ways in, both ending in one kind of :class:`Registry` (``mvmr.representations.register``,
``mvmr.representations.teachers.register_teacher``, ``mvmr.methods.register_method`` fill them):

- **Entry points.** A package declares, in its ``pyproject.toml``::

      [project.entry-points."mvmr.representations"]
      edges = "my_pkg.reps:Edges"          # a Representation class (or factory)
      [project.entry-points."mvmr.teachers"]
      mykind = "my_pkg.teachers:build"     # spec "mykind:<arg>" -> build(arg, **options)
      [project.entry-points."mvmr.methods"]
      simsiam = "my_pkg.methods:SIMSIAM"   # a mvmr.methods.Method

  and the registry loads them the first time it looks up a name it does not know.
- **Modules.** ``mvmr --plugin my_pkg.reps ...`` or ``plugins: [my_pkg.reps]`` in a YAML config
  imports the module, whose ``@register(...)`` decorators do the registration.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from importlib.metadata import EntryPoint, entry_points
from typing import Any, Generic, TypeVar

from mvmr.errors import ConfigError

__all__ = ["GROUPS", "Registry", "import_plugins", "plugin_entry_points"]

T = TypeVar("T")

#: The entry-point groups mvmr reads.
GROUPS = ("mvmr.representations", "mvmr.teachers", "mvmr.methods")


def import_plugins(modules: Iterable[str], *, key: str = "plugins") -> None:
    """Import each module (its import registers what it defines); a clear error names a missing one."""
    for i, name in enumerate(modules):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ConfigError(f"{key}[{i}]: cannot import plugin module {name!r}: {err}") from err


def plugin_entry_points(group: str) -> dict[str, EntryPoint]:
    """The installed entry points of ``group`` by name (not loaded)."""
    if group not in GROUPS:
        raise ValueError(f"unknown plugin group {group!r}; expected one of {', '.join(GROUPS)}")
    return {ep.name: ep for ep in entry_points(group=group)}


class Registry(Generic[T]):
    """Names to things of one ``kind`` (representations, teacher builders, methods): the built-ins and
    what users register, plus the installed entry points of ``group``, loaded on first lookup.

    Args:
        kind: what the names name, for messages (``"representation"``, ``"teacher kind"``, ``"method"``).
        group: the entry-point group (one of :data:`GROUPS`).
        adapt: ``(name, loaded entry point) -> T`` (default: the loaded object itself).
    """

    def __init__(self, kind: str, group: str, *, adapt: Callable[[str, Any], T] | None = None) -> None:
        if group not in GROUPS:
            raise ValueError(f"unknown plugin group {group!r}; expected one of {', '.join(GROUPS)}")
        self.kind, self.group = kind, group
        self._adapt = adapt or (lambda name, loaded: loaded)
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Add ``item`` as ``name`` and return it; a different item under a taken name is a ValueError."""
        known = self._items.get(name)
        if known is not None and known is not item:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests; a plugin reloaded under development)."""
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        """The item registered as ``name``, loading an installed entry point of that name first if needed;
        a ConfigError naming the available ones otherwise."""
        if name not in self._items:
            entry = plugin_entry_points(self.group).get(name)
            if entry is not None:
                self.register(name, self._adapt(name, entry.load()))
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(f"unknown {self.kind} {name!r}; available: {', '.join(self.names())}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._items or name in plugin_entry_points(self.group)

    def registered(self) -> dict[str, T]:
        """The items registered so far (entry points not loaded), by name."""
        return dict(self._items)

    def names(self) -> list[str]:
        """Registered and installed names, sorted."""
        return sorted(set(self._items) | set(plugin_entry_points(self.group)))
