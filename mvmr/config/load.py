"""Config files: YAML with ``base:`` inheritance, ``key=value`` overrides, writing a config back.

OmegaConf reads the YAML (``1e-4`` is a number, a duplicated key an error), merges each file over
its ``base:`` (a path relative to the file, or a shipped config's name) and the result over the
defaults, and sets the overrides; interpolations (``output_dir: runs/${name}``,
``root: ${oc.env:DATA}``) are resolved last. :func:`~mvmr.config.validate.from_dict` validates.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mvmr.config.schema import Config
from mvmr.config.validate import from_dict, to_dict
from mvmr.errors import ConfigError
from mvmr.utils.atomic import atomic_write_text

__all__ = [
    "CONFIG_DIR",
    "shipped_configs",
    "resolve_config_path",
    "load_config",
    "apply_overrides",
    "to_yaml",
    "save_config",
]

#: The configs shipped with the package (``configs/`` at the repository root points here).
CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"


def shipped_configs() -> list[str]:
    """Names of the configs shipped with the package (``mvmr pretrain --config <name>``)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(path: str | os.PathLike[str]) -> Path:
    """``path`` if it exists, else a shipped config of that name (``stl10`` or ``stl10.yaml``)."""
    p = Path(path)
    if p.is_file():
        return p
    if len(p.parts) == 1:
        shipped = CONFIG_DIR / (p.name if p.suffix in (".yaml", ".yml") else p.name + ".yaml")
        if shipped.is_file():
            return shipped
    raise ConfigError(f"config file not found: {path} (shipped configs: {', '.join(shipped_configs())})")


def load_config(path: str | os.PathLike[str] | None = None, overrides: Iterable[str] = ()) -> Config:
    """Read a YAML config (a path or a shipped name; None = all defaults), apply overrides, validate.

    The file is merged over the defaults first, so that an override reaches any key, the items of
    a default list included (``representations.items.3.kwargs.cell=16``).
    """
    with _omegaconf_errors("the configuration"):
        tree = OmegaConf.create(to_dict(Config()))
        if path is not None:
            tree = _merge(tree, _read_tree(resolve_config_path(path)))
        data = OmegaConf.to_container(tree)  # unresolved: an interpolation may use an overridden key
    return from_dict(apply_overrides(data, overrides))  # type: ignore[arg-type]


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Apply ``a.b.c=value`` overrides to a plain config mapping; each value is parsed as YAML.

    A numeric key part indexes a list (``representations.items.1.weight=2``, or ``items[1]``). A
    value replaces what was there (a mapping is not merged into the old one).
    """
    with _omegaconf_errors("the configuration"):
        tree = OmegaConf.create(to_dict(dict(data)))
        for text in overrides:
            _apply_override(tree, text)
        return OmegaConf.to_container(tree, resolve=True, throw_on_missing=True)  # type: ignore[return-value]


def to_yaml(config: Any) -> str:
    """The config as YAML with every key (defaults included), quoted so that it reads back exactly."""
    with _omegaconf_errors("the configuration"):
        return OmegaConf.to_yaml(to_dict(config))


def save_config(config: Any, path: str | os.PathLike[str]) -> Path:
    """Write the config as YAML, atomically (:func:`mvmr.utils.atomic.atomic_write_text`)."""
    return atomic_write_text(path, to_yaml(config))


@contextmanager
def _omegaconf_errors(where: str) -> Iterator[None]:
    """OmegaConf's errors as ConfigErrors that start with the key (``where`` when the error names none)."""
    try:
        yield
    except OmegaConfBaseException as err:
        raise ConfigError(f"{getattr(err, 'full_key', None) or where}: {str(err).splitlines()[0]}") from None


def _read_tree(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """A YAML file merged over its ``base:`` chain, unresolved (interpolations wait for the overrides)."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: 'base' chain loops back to itself")
    try:
        tree = OmegaConf.load(path)
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    except OSError as err:  # also what OmegaConf raises for a document that is a single scalar
        raise ConfigError(f"{path}: {err}") from None
    if not isinstance(tree, DictConfig):
        raise ConfigError(f"{path}: the top level must be a mapping, got a list")
    base = tree.pop("base", None)
    if base is None:
        return tree
    if not isinstance(base, str):
        raise ConfigError(f"{path}: base: expected a file name, got {base!r}")
    base_path = path.parent / base
    return _merge(_read_tree(base_path if base_path.is_file() else resolve_config_path(base), (*seen, path)), tree)


def _merge(base: DictConfig, over: DictConfig) -> DictConfig:
    """``over`` merged into ``base``, recursively; lists and scalars replace the base's values.

    So does a mapping that meets a list, or a list a mapping (OmegaConf refuses to merge those):
    validation then names the key if the schema declares another shape.
    """
    for keys in _shape_changes(OmegaConf.to_container(base), OmegaConf.to_container(over)):
        parent = base
        for key in keys[:-1]:
            parent = parent[key]
        parent[keys[-1]] = None  # what is merged onto None replaces it
    return OmegaConf.merge(base, over)  # type: ignore[return-value]


def _shape_changes(base: Any, over: Any, keys: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The keys whose value is a mapping in one plain tree and a list in the other."""
    if isinstance(base, dict) and isinstance(over, dict):
        for key, value in over.items():
            if key in base:
                yield from _shape_changes(base[key], value, (*keys, key))
    elif isinstance(base, (dict, list)) and isinstance(over, (dict, list)) and type(base) is not type(over):
        yield keys


def _apply_override(tree: DictConfig, text: str) -> None:
    """Set one ``key=value`` override in ``tree``; the value is YAML (``3``, ``[1, 2]``, ``{a: 1}``, ``null``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value, e.g. trainer.max_epochs=10")
    key, raw = text.split("=", 1)
    parts = re.sub(r"\[(\d+)\]", r".\1", key.strip()).split(".")  # items[3] -> items.3
    if not all(parts):
        raise ConfigError(f"override {text!r}: empty key")
    dotted = ".".join(parts)
    try:  # OmegaConf's YAML reading of a dotlist value, without resolving it
        value = (
            cast(dict, OmegaConf.to_container(OmegaConf.from_dotlist([f"value={raw}"])))["value"] if raw.strip() else ""
        )
    except yaml.YAMLError as err:
        raise ConfigError(f"{dotted}: cannot parse value {raw!r}: {err}") from None
    node: Any = tree
    for depth, part in enumerate(parts):
        if node is None:  # a missing or null key: OmegaConf.update creates the mappings below it
            break
        if isinstance(node, ListConfig) and not (part.isdigit() and int(part) < len(node)):
            raise ConfigError(f"{'.'.join(parts[: depth + 1])}: no list item {part!r} (the list has {len(node)} items)")
        if not isinstance(node, (DictConfig, ListConfig)):
            raise ConfigError(f"{'.'.join(parts[:depth])}: is {node!r}, not a mapping; cannot set {dotted}")
        if depth + 1 < len(parts):
            node = node[int(part)] if isinstance(node, ListConfig) else node.get(part)
    OmegaConf.update(tree, dotted, value, merge=False)
