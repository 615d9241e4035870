"""The paper's ablation tables (appendix B, Tables 5-8) as rows of config overrides.

One *row* of a table is a list of dotted config overrides applied on top of the base config
(the same base, the same data and the same probe for every row):

- Table 5 (loss terms): a term is switched off by a zero weight. L1 has two parts (the MSE
  weighted by ``loss.lambda_`` and the variance hinge weighted by ``loss.mu``), both are set to 0;
  L2 is ``loss.alpha=0``; L3 is ``loss.beta=0``, and then the representations are dropped as well
  (``representations.items=[]``): their distance correlations would only be multiplied by 0, so
  the loss and its gradients are unchanged and the row is cheaper.
- Table 6 (representations of L3): ``representations.items`` restricted to a subset of the base
  config's items (their kwargs and weights are kept); all 31 non-empty subsets or a given list.
- Table 7 (augmentations): ``data.augmentation.<crop|flip|color|grayscale|blur>`` exactly as the
  paper's five rows.
- Table 8 (projector): ``model.projector`` for the paper's 19 sizes ("" = no projector).

Every row carries the paper's numbers (STL10, ResNet50, 100 epochs) to print beside ours.
:func:`row_config` makes a row's config; rows that compute the same representations share one
feature cache (:func:`with_shared_cache`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mvmr.config import from_dict, load_config, to_dict
from mvmr.errors import ConfigError

__all__ = [
    "TABLES",
    "REPRESENTATIONS",
    "AUGMENTATIONS",
    "AblationRow",
    "table_rows",
    "select_rows",
    "row_config",
    "with_shared_cache",
]

#: The tables this module knows.
TABLES = (5, 6, 7, 8)

#: Table 6's columns: registry name -> the paper's column title, in the paper's order.
REPRESENTATIONS: dict[str, str] = {
    "pixels": "Original image",
    "scatnet": "ScatNet",
    "augmented_pixels": "Augmented image",
    "hog": "HOG",
    "local_std": "LSD",
}

#: Table 7's columns: ``data.augmentation`` switch -> the paper's column title.
AUGMENTATIONS: dict[str, str] = {
    "crop": "Random Crop",
    "flip": "Horizontal Flip",
    "color": "Color",
    "grayscale": "Grayscale",
    "blur": "Blur",
}

# The paper's numbers (STL10, ResNet50, 100 epochs, batch 64; linear probe top-1 / top-5).
#: Table 5: (L1, L2, L3) -> (top-1, top-5)
_PAPER_T5: list[tuple[tuple[bool, bool, bool], float, float]] = [
    ((True, False, False), 50.86, 93.95),
    ((False, True, False), 46.71, 92.18),
    ((False, False, True), 44.1, 92.08),
    ((True, True, False), 50.76, 93.83),
    ((True, False, True), 47.39, 92.54),
    ((False, True, True), 40.06, 89.31),
    ((True, True, True), 69.38, 98.85),
]

#: Table 6 as printed, in order: marks over (pixels, scatnet, augmented, hog, lsd), top-1, top-5.
#: The printed table repeats some subsets (aug+LSD, HOG+LSD, ScatNet+aug+LSD) and so misses
#: others; a repeated subset is reported with all its printed values and flagged.
_PAPER_T6: list[tuple[str, float, float]] = [
    ("10000", 58.82, 96.81),
    ("01000", 54.12, 95.23),
    ("00100", 63.51, 97.81),
    ("00010", 54.15, 95.26),
    ("00001", 53.94, 95.44),
    ("11000", 64.44, 97.97),
    ("10100", 66.18, 98.39),
    ("10010", 63.0, 97.78),
    ("10001", 63.14, 97.8),
    ("01100", 63.3, 97.78),
    ("01010", 62.95, 97.6),
    ("00101", 59.41, 96.78),
    ("00011", 63.66, 97.69),
    ("00101", 60.21, 96.8),
    ("00011", 62.46, 97.71),
    ("11100", 65.82, 98.18),
    ("11010", 65.52, 97.97),
    ("11001", 60.96, 97.08),
    ("10110", 65.11, 98.12),
    ("10101", 65.19, 98.0),
    ("10011", 65.37, 98.29),
    ("01101", 65.45, 98.18),
    ("01101", 64.35, 97.93),
    ("01011", 60.63, 97.1),
    ("00111", 64.9, 98.08),
    ("11110", 68.25, 98.45),
    ("11101", 68.2, 98.53),
    ("11011", 64.56, 97.44),
    ("10111", 67.21, 98.48),
    # printed with three marks under "4 features"; the one 4-subset missing from the table is 01111
    ("01111", 67.05, 98.22),
    ("11111", 69.38, 98.85),
]

#: Table 7: augmentation switches -> (top-1, top-5)
_PAPER_T7: list[tuple[tuple[str, ...], float, float]] = [
    (("crop",), 43.02, 90.31),
    (("crop", "flip"), 49.99, 93.98),
    (("crop", "flip", "color"), 50.58, 93.76),
    (("crop", "flip", "color", "grayscale"), 70.82, 98.96),
    (("crop", "flip", "color", "grayscale", "blur"), 69.38, 98.85),
]

#: Table 8: projector -> top-1 (the paper prints "1024-1024-1021", evidently 1024-1024-1024)
_PAPER_T8: list[tuple[str, float]] = [
    ("8192-8192-8192", 69.38),
    ("4096-4096-4096", 51.90),
    ("2048-2048-2048", 51.35),
    ("1024-1024-1024", 51.86),
    ("512-512-512", 49.40),
    ("256-256-256", 49.02),
    ("8192-8192", 49.90),
    ("4096-4096", 48.81),
    ("2048-2048", 48.66),
    ("1024-1024", 48.73),
    ("512-512", 48.06),
    ("256-256", 48.07),
    ("8192", 48.65),
    ("4096", 48.51),
    ("2048", 48.20),
    ("1024", 47.61),
    ("512", 46.11),
    ("256", 47.17),
    ("", 16.70),
]


@dataclass
class AblationRow:
    """One row of an ablation table."""

    key: str  # file-name-safe identifier, also what ``--rows`` takes
    group: str  # the paper's group heading ("1 loss", "2 features", ...) or ""
    cells: dict[str, str]  # the paper's left-hand columns (check marks or the projector size)
    overrides: list[str]  # dotted config overrides that make this row
    paper_top1: float | None = None
    paper_top5: float | None = None
    paper_note: str = ""


def _mark(flag: bool) -> str:
    """The paper's check mark for a switched-on column."""
    return "✓" if flag else ""


def _table5() -> list[AblationRow]:
    """Table 5: every combination of the loss terms L1, L2, L3."""
    off = {
        "L1": ["loss.lambda_=0", "loss.mu=0"],
        "L2": ["loss.alpha=0"],
        "L3": ["loss.beta=0", "representations.items=[]"],
    }
    rows = []
    for flags, top1, top5 in _PAPER_T5:
        on = dict(zip(off, flags, strict=True))
        rows.append(
            AblationRow(
                key="+".join(n for n in off if on[n]),
                group=f"{sum(flags)} loss" + ("" if sum(flags) == 1 else "es"),
                cells={n: _mark(on[n]) for n in off},
                overrides=[o for n in off if not on[n] for o in off[n]],
                paper_top1=top1,
                paper_top5=top5,
            )
        )
    return rows


def _spec_dicts(base: Any) -> dict[str, dict[str, Any]]:
    """The base config's representation items as plain dicts by name (kwargs and weights kept)."""
    items = to_dict(base.representations.items) if base is not None else []
    out = {item["name"]: item for item in items}
    for name in REPRESENTATIONS:  # names missing from the base config get the defaults
        out.setdefault(name, {"name": name})
    return out


def _table6(base: Any) -> list[AblationRow]:
    """Table 6: every non-empty subset of the five representations, with the paper's printed numbers."""
    names = list(REPRESENTATIONS)
    specs = _spec_dicts(base)
    printed: dict[str, list[tuple[float, float]]] = {}
    for bits, paper_top1, paper_top5 in _PAPER_T6:
        printed.setdefault(bits, []).append((paper_top1, paper_top5))
    rows = []
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            bits = "".join("1" if n in combo else "0" for n in names)
            items = [specs[n] for n in combo]
            override = "representations.items=" + json.dumps(items, separators=(", ", ": "))
            values = printed.get(bits, [])
            top1, top5 = values[0] if len(values) == 1 else (None, None)
            note = (
                "printed with 3 marks; the only missing 4-subset"
                if bits == "01111"
                else "printed twice: " + " / ".join(f"{a:g}" for a, _ in values)
                if len(values) > 1
                else ""
                if values
                else "not in the printed table"
            )
            override_beta = []
            if base is not None and isinstance(base.loss.beta, dict):
                override_beta = ["loss.beta=" + json.dumps({n: base.loss.beta.get(n, 1.0) for n in combo})]
            rows.append(
                AblationRow(
                    key="+".join(combo),
                    group=f"{k} feature" + ("" if k == 1 else "s"),
                    cells={REPRESENTATIONS[n]: _mark(n in combo) for n in names},
                    overrides=[override, *override_beta],
                    paper_top1=top1,
                    paper_top5=top5,
                    paper_note=note,
                )
            )
    return rows


def _table7() -> list[AblationRow]:
    """Table 7: the paper's five augmentation sets."""
    return [
        AblationRow(
            key="+".join(on),
            group="",
            cells={t: _mark(a in on) for a, t in AUGMENTATIONS.items()},
            overrides=[f"data.augmentation.{a}={'true' if a in on else 'false'}" for a in AUGMENTATIONS],
            paper_top1=top1,
            paper_top5=top5,
        )
        for on, top1, top5 in _PAPER_T7
    ]


def _table8() -> list[AblationRow]:
    """Table 8: the paper's 19 projector sizes."""
    return [
        AblationRow(
            key=spec or "none",
            group="",
            cells={"Projector size": spec or "without projector"},
            overrides=[f"model.projector='{spec}'"],
            paper_top1=top1,
            paper_note="printed as 1024-1024-1021" if spec == "1024-1024-1024" else "",
        )
        for spec, top1 in _PAPER_T8
    ]


def table_rows(table: int, base: Any = None) -> list[AblationRow]:
    """Every row of ``table`` (5, 6, 7 or 8); Table 6 takes its representation kwargs from ``base``."""
    if table in TABLES:
        return {5: _table5, 6: lambda: _table6(base), 7: _table7, 8: _table8}[table]()
    raise ConfigError(f"--table: expected one of {', '.join(map(str, TABLES))}, got {table!r}")


def select_rows(rows: Sequence[AblationRow], wanted: Iterable[str] | None) -> list[AblationRow]:
    """The rows named in ``wanted`` (keys, comma lists allowed), in the table's order; all for None.

    Table 6 keys may list the representations in any order (``hog+pixels`` = ``pixels+hog``).
    """
    if not wanted:
        return list(rows)
    names = [w.strip() for item in wanted for w in str(item).split(",") if w.strip()]
    by_key = {r.key: r for r in rows}
    by_set = {frozenset(r.key.split("+")): r for r in rows}
    chosen = set()
    for name in names:
        row = by_key.get(name) or by_set.get(frozenset(name.split("+")))
        if row is None:
            raise ConfigError(f"--rows: unknown row {name!r}; rows of this table: {', '.join(by_key)}")
        chosen.add(row.key)
    return [r for r in rows if r.key in chosen]


def row_config(
    base_path: str | os.PathLike[str], row: AblationRow, overrides: Sequence[str], out: str | os.PathLike[str]
) -> Any:
    """The validated config of ``row``: base file + user overrides + the row's overrides + run folder.

    With ``representations.cache_dir`` set, see :func:`with_shared_cache`.
    """
    return with_shared_cache(load_config(base_path, [*overrides, *row.overrides, f"output_dir={Path(out) / row.key}"]))


def with_shared_cache(config: Any) -> Any:
    """``representations.cache_dir`` replaced by a sub-folder named after what the cache holds.

    A :class:`~mvmr.representations.FeatureCache` only opens for exactly the representations,
    data, image size and projection it was built for, and for the seed of that projection. Rows
    that differ in any of these get different sub-folders; rows that agree share one cache (built
    by the first of them). Without ``project_dim`` nothing in the cache depends on the seed, so
    rows of every seed share one cache. A config without a cache directory is returned unchanged.
    """
    r = config.representations
    if r.cache_dir is None or Path(r.cache_dir).name.startswith("reps-"):
        return config
    seed = config.trainer.seed if r.project_dim is not None else None  # the seed only draws the projection
    # what the cache holds: the clean view's representations (their objective and weight do not change it)
    held = [{"name": s.name, "kwargs": to_dict(s.kwargs)} for s in r.items if s.view == "clean"]
    what = json.dumps(
        {
            "items": held,
            "project_dim": r.project_dim,
            "seed": seed,
            "data": [
                config.data.kind,
                str(config.data.root),
                config.data.split,
                config.data.image_size,
                config.data.subset,
                config.data.channels,
            ],
        },
        sort_keys=True,
    )
    sub = "reps-" + hashlib.sha256(what.encode()).hexdigest()[:12]
    data = to_dict(config)
    data["representations"]["cache_dir"] = str(Path(r.cache_dir) / sub)
    return from_dict(data, type(config))
