"""Plugins: representations, teachers and methods that live in a user's own package.

Two ways in, both ending in the registries (``mvmr.representations.register``,
``mvmr.representations.teachers.register_teacher``, ``mvmr.methods.register_method``):

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
from importlib.metadata import EntryPoint, entry_points
from typing import Iterable

from mvmr.errors import ConfigError

__all__ = ["GROUPS", "import_plugins", "plugin_entry_points"]

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
