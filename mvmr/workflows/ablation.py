"""The paper's ablations (appendix B, Tables 5-8) generated from one base config, run and collected.

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

:func:`run_row` pretrains one row and evaluates its encoder with :mod:`mvmr.evaluation` (linear
probe and k-NN on features extracted once); a row whose ``result.json`` exists is skipped.
:func:`collect_markdown` writes the table in the paper's layout with the paper's numbers in a
column beside ours; :func:`plot_table` draws the bar chart.
"""

from __future__ import annotations

import itertools
import json
import os
import resource
import shlex
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from mvmr.errors import ConfigError

__all__ = [
    "TABLES",
    "REPRESENTATIONS",
    "AblationRow",
    "ProbeSettings",
    "table_rows",
    "select_rows",
    "row_config",
    "run_row",
    "evaluate_extractor",
    "probe_datasets",
    "load_row_result",
    "find_reusable",
    "with_shared_cache",
    "launcher_commands",
    "collect_markdown",
    "plot_table",
]

TABLES = (5, 6, 7, 8)

#: Table 6's columns: registry name -> the paper's column title, in the paper's order.
REPRESENTATIONS: dict[str, str] = {
    "pixels": "Original image",
    "scatnet": "ScatNet",
    "augmented_pixels": "Augmented image",
    "hog": "HOG",
    "local_std": "LSD",
}

AUGMENTATIONS: dict[str, str] = {
    "crop": "Random Crop",
    "flip": "Horizontal Flip",
    "color": "Color",
    "grayscale": "Grayscale",
    "blur": "Blur",
}

RESULT_FILE = "result.json"

# ------------------------------------------------------------------------------------------
# The paper's numbers (STL10, ResNet50, 100 epochs, batch 64; linear probe top-1 / top-5)
# ------------------------------------------------------------------------------------------
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
    ("10000", 58.82, 96.81), ("01000", 54.12, 95.23), ("00100", 63.51, 97.81), ("00010", 54.15, 95.26),
    ("00001", 53.94, 95.44),
    ("11000", 64.44, 97.97), ("10100", 66.18, 98.39), ("10010", 63.0, 97.78), ("10001", 63.14, 97.8),
    ("01100", 63.3, 97.78), ("01010", 62.95, 97.6), ("00101", 59.41, 96.78), ("00011", 63.66, 97.69),
    ("00101", 60.21, 96.8), ("00011", 62.46, 97.71),
    ("11100", 65.82, 98.18), ("11010", 65.52, 97.97), ("11001", 60.96, 97.08), ("10110", 65.11, 98.12),
    ("10101", 65.19, 98.0), ("10011", 65.37, 98.29), ("01101", 65.45, 98.18), ("01101", 64.35, 97.93),
    ("01011", 60.63, 97.1), ("00111", 64.9, 98.08),
    ("11110", 68.25, 98.45), ("11101", 68.2, 98.53), ("11011", 64.56, 97.44), ("10111", 67.21, 98.48),
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
    ("8192-8192-8192", 69.38), ("4096-4096-4096", 51.90), ("2048-2048-2048", 51.35),
    ("1024-1024-1024", 51.86), ("512-512-512", 49.40), ("256-256-256", 49.02),
    ("8192-8192", 49.90), ("4096-4096", 48.81), ("2048-2048", 48.66), ("1024-1024", 48.73),
    ("512-512", 48.06), ("256-256", 48.07),
    ("8192", 48.65), ("4096", 48.51), ("2048", 48.20), ("1024", 47.61), ("512", 46.11), ("256", 47.17),
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
    return "✓" if flag else ""


def _count_group(n: int, noun: str) -> str:
    if n == 1:
        return f"{n} {noun}"
    return f"{n} {noun}" + ("es" if noun.endswith("s") else "s")


def _table5() -> list[AblationRow]:
    rows = []
    for flags, top1, top5 in _PAPER_T5:
        l1, l2, l3 = flags
        overrides: list[str] = []
        if not l1:
            overrides += ["loss.lambda_=0", "loss.mu=0"]
        if not l2:
            overrides += ["loss.alpha=0"]
        if not l3:
            overrides += ["loss.beta=0", "representations.items=[]"]
        key = "+".join(n for n, f in zip(("L1", "L2", "L3"), flags) if f)
        rows.append(AblationRow(key=key, group=_count_group(sum(flags), "loss"),
                                cells={"L1": _mark(l1), "L2": _mark(l2), "L3": _mark(l3)},
                                overrides=overrides, paper_top1=top1, paper_top5=top5))
    return rows


def _spec_dicts(base: Any) -> dict[str, dict[str, Any]]:
    """The base config's representation items as plain dicts by name (kwargs and weights kept)."""
    from mvmr.config import to_dict

    items = to_dict(base.representations.items) if base is not None else []
    out = {item["name"]: item for item in items}
    for name in REPRESENTATIONS:  # names missing from the base config get the defaults
        out.setdefault(name, {"name": name})
    return out


def _table6(base: Any) -> list[AblationRow]:
    names = list(REPRESENTATIONS)
    specs = _spec_dicts(base)
    printed: dict[str, list[tuple[float, float]]] = {}
    for bits, top1, top5 in _PAPER_T6:
        printed.setdefault(bits, []).append((top1, top5))
    rows = []
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            bits = "".join("1" if n in combo else "0" for n in names)
            items = [specs[n] for n in combo]
            override = "representations.items=" + json.dumps(items, separators=(", ", ": "))
            values = printed.get(bits, [])
            note = ""
            top1 = top5 = None
            if len(values) == 1:
                top1, top5 = values[0]
            elif len(values) > 1:
                note = "printed twice: " + " / ".join(f"{a:g}" for a, _ in values)
            else:
                note = "not in the printed table"
            if bits == "01111":
                note = "printed with 3 marks; the only missing 4-subset"
            if base is not None and isinstance(base.loss.beta, dict):
                beta = {n: base.loss.beta.get(n, 1.0) for n in combo}
                override_beta = ["loss.beta=" + json.dumps(beta)]
            else:
                override_beta = []
            rows.append(AblationRow(key="+".join(combo), group=_count_group(k, "feature"),
                                    cells={REPRESENTATIONS[n]: _mark(n in combo) for n in names},
                                    overrides=[override, *override_beta], paper_top1=top1, paper_top5=top5,
                                    paper_note=note))
    return rows


def _table7() -> list[AblationRow]:
    rows = []
    for on, top1, top5 in _PAPER_T7:
        overrides = [f"data.augmentation.{a}={'true' if a in on else 'false'}" for a in AUGMENTATIONS]
        rows.append(AblationRow(key="+".join(on), group="", cells={t: _mark(a in on) for a, t in AUGMENTATIONS.items()},
                                overrides=overrides, paper_top1=top1, paper_top5=top5))
    return rows


def _table8() -> list[AblationRow]:
    rows = []
    for spec, top1 in _PAPER_T8:
        note = "printed as 1024-1024-1021" if spec == "1024-1024-1024" else ""
        rows.append(AblationRow(key=spec or "none", group="", cells={"Projector size": spec or "without projector"},
                                overrides=[f"model.projector='{spec}'"], paper_top1=top1, paper_note=note))
    return rows


def table_rows(table: int, base: Any = None) -> list[AblationRow]:
    """Every row of ``table`` (5, 6, 7 or 8); Table 6 takes its representation kwargs from ``base``."""
    if table == 5:
        return _table5()
    if table == 6:
        return _table6(base)
    if table == 7:
        return _table7()
    if table == 8:
        return _table8()
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


def row_config(base_path: str | os.PathLike[str], row: AblationRow, overrides: Sequence[str], out: str | os.PathLike[str]) -> Any:
    """The validated config of ``row``: base file + user overrides + the row's overrides + run folder.

    With ``representations.cache_dir`` set, see :func:`with_shared_cache`.
    """
    from mvmr.config import load_config

    return with_shared_cache(load_config(base_path, [*overrides, *row.overrides, f"output_dir={Path(out) / row.key}"]))


def with_shared_cache(config: Any) -> Any:
    """``representations.cache_dir`` replaced by a sub-folder named after what the cache holds.

    A :class:`~mvmr.representations.FeatureCache` only opens for exactly the representations,
    data, image size, projection and seed it was built for. Rows that differ in any of these
    get different sub-folders; rows that agree share one cache (built by the first of them).
    A config without a cache directory is returned unchanged.
    """
    import hashlib

    from mvmr.config import to_dict, validate

    r = config.representations
    if r.cache_dir is None or Path(r.cache_dir).name.startswith("reps-"):
        return config
    what = json.dumps({"items": to_dict(r.items), "project_dim": r.project_dim, "seed": config.trainer.seed,
                       "data": [config.data.kind, str(config.data.root), config.data.split, config.data.image_size,
                                config.data.subset, config.data.channels]}, sort_keys=True)
    sub = "reps-" + hashlib.sha256(what.encode()).hexdigest()[:12]
    data = to_dict(config)
    data["representations"]["cache_dir"] = str(Path(r.cache_dir) / sub)
    return _from(data, type(config))


def _from(data: Mapping[str, Any], cls: type) -> Any:
    from mvmr.config import from_dict

    return from_dict(data, cls)


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(config)
    out.pop("output_dir", None)
    return out


def _normalised(stored: Mapping[str, Any], cls: type) -> dict[str, Any] | None:
    """A stored config with today's defaults filled in (sections added since it was written), or
    None when it no longer parses (an unknown key: never reuse what we cannot read)."""
    from mvmr.config import to_dict

    try:
        return _comparable(to_dict(_from(stored, cls)))
    except (ValueError, TypeError, KeyError):
        return None


def _pretrain_method(res: Mapping[str, Any]) -> str:
    """How a result's encoder was pretrained: ``mvmr`` or ``peer:<method>`` (the config alone does not say)."""
    if res.get("pretrain_method"):
        return str(res["pretrain_method"])
    method = res.get("method")
    return f"peer:{method}" if method in ("vicreg", "barlow_twins") else "mvmr"


def find_reusable(config: Any, probe: "ProbeSettings", dirs: Iterable[str | os.PathLike[str]],
                  method: str = "mvmr") -> tuple[Path, dict[str, Any]] | None:
    """A finished row (``<dir>/*/result.json``) pretrained by ``method`` with exactly this config
    (run folder aside) and probe settings."""
    from mvmr.config import to_dict

    want_cfg, want_probe = _comparable(to_dict(config)), asdict(probe)
    for d in dirs:
        for path in sorted(Path(d).glob(f"*/{RESULT_FILE}")):
            try:
                res = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (_pretrain_method(res) == method and res.get("probe") == want_probe
                    and _normalised(res.get("config") or {}, type(config)) == want_cfg):
                return path.parent, res
    return None


# ------------------------------------------------------------------------------------------
# Evaluation (linear probe + k-NN on features extracted once)
# ------------------------------------------------------------------------------------------
@dataclass
class ProbeSettings:
    """Evaluation data and protocol, identical for every row."""

    kind: str | None = None  # dataset kind; None = the pretraining config's
    root: str | None = None  # dataset root; None = the pretraining config's
    train_split: str = "train"
    test_split: str = "test"
    train_size: int | None = None  # fixed (seed 0) random subset of the probe's training split
    test_size: int | None = None
    image_size: int | None = None  # None = the pretraining config's
    epochs: int = 100  # paper: 100 epochs, Adam, lr 1e-4, batch 256
    lr: float = 1e-4
    batch_size: int = 256
    val_fraction: float = 0.1
    knn_k: int = 20
    seed: int = 0
    device: str = "auto"


def _fixed_subset(dataset: Any, size: int | None, seed: int) -> Any:
    import numpy as np

    from mvmr.evaluation.features import IndexedSubset

    if size is None or size >= len(dataset):
        return dataset
    rng = np.random.default_rng(seed)
    return IndexedSubset(dataset, np.sort(rng.choice(len(dataset), size=size, replace=False)))


def probe_datasets(probe: ProbeSettings, config: Any = None) -> tuple[Any, Any]:
    """The labelled (train, test) datasets of the probe (fixed subsets when sizes are given)."""
    from mvmr.data import build_dataset

    kind = probe.kind or config.data.kind
    root = probe.root if probe.root is not None else config.data.root
    size = probe.image_size or config.data.image_size
    channels = config.data.channels if config is not None else 3
    train = build_dataset(kind, root, split=probe.train_split, size=size, channels=channels)
    test = build_dataset(kind, root, split=probe.test_split, size=size, channels=channels)
    return _fixed_subset(train, probe.train_size, probe.seed), _fixed_subset(test, probe.test_size, probe.seed + 1)


def evaluate_extractor(extractor: Any, train_ds: Any, test_ds: Any, probe: ProbeSettings, *,
                       encoder: str = "", dataset: str = "", save_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Linear probe (epoch chosen on a stratified train hold-out) and weighted k-NN (the whole
    training split as the bank), both on features extracted once per split.

    Returns ``linear_top1``, ``linear_top5``, ``knn_top1``, ``chosen_epoch``, ``feature_dim``, sizes.
    With ``save_dir`` the two :class:`~mvmr.evaluation.ProtocolResult` are saved there too.
    """
    from mvmr.evaluation import KNNConfig, LinearConfig, ProtocolResult, save_result
    from mvmr.evaluation.features import check_same_classes, dataset_labels, extract_features
    from mvmr.evaluation.knn import knn_on_features
    from mvmr.evaluation.linear import linear_on_features
    from mvmr.evaluation.subsets import stratified_split

    classes = check_same_classes(train_ds, test_ds)
    labels = dataset_labels(train_ds)
    tr_idx, va_idx = stratified_split(labels, probe.val_fraction, seed=probe.seed)
    common = dict(batch_size=256, device=probe.device, num_workers=0, progress=False)
    x_train, y_train = extract_features(extractor, train_ds, desc="train features", **common)
    x_test, y_test = extract_features(extractor, test_ds, desc="test features", **common)
    lin_cfg = LinearConfig(epochs=probe.epochs, lr=probe.lr, batch_size=probe.batch_size, val_fraction=probe.val_fraction,
                           seed=probe.seed, device=probe.device, progress=False)
    val = (x_train[va_idx], y_train[va_idx]) if len(va_idx) else None
    lin, _ = linear_on_features((x_train[tr_idx], y_train[tr_idx]), val, (x_test, y_test), num_classes=len(classes),
                                config=lin_cfg)
    knn_cfg = KNNConfig(k=probe.knn_k, device=probe.device, progress=False)
    knn = knn_on_features((x_train, y_train), (x_test, y_test), num_classes=len(classes), config=knn_cfg)
    sizes = dict(num_train=len(tr_idx), num_val=len(va_idx), num_test=int(x_test.shape[0]), feature_dim=int(x_test.shape[1]))
    if save_dir is not None:
        save_result(save_dir, ProtocolResult(protocol="linear", metrics={**lin, **sizes}, encoder=encoder, dataset=dataset,
                                             config=lin_cfg.summary()))
        save_result(save_dir, ProtocolResult(protocol="knn", metrics={**knn, "num_train": int(x_train.shape[0])},
                                             encoder=encoder, dataset=dataset, config=knn_cfg.summary()))
    return {
        "linear_top1": float(lin["test_top1"]),
        "linear_top5": float(lin.get("test_top5", float("nan"))),
        "knn_top1": float(knn["test_top1"]),
        "chosen_epoch": int(lin["chosen_epoch"]),
        **sizes,
    }


def encoder_of_run(run_dir: str | os.PathLike[str]) -> Any:
    """The trained encoder of a pretraining run folder (its ``checkpoints/last.ckpt``)."""
    from mvmr.evaluation import resolve_encoder

    ckpt = Path(run_dir) / "checkpoints" / "last.ckpt"
    return resolve_encoder(checkpoint=ckpt)


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _atomic_json(path: Path, data: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def load_row_result(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A finished row's result (``<run>/result.json``), or None."""
    path = Path(run_dir) / RESULT_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def run_row(config: Any, probe: ProbeSettings, *, key: str = "", extra: Mapping[str, Any] | None = None,
            pretrain_fn: Callable[[Any], Path] | None = None, trainer_overrides: Mapping[str, Any] | None = None,
            reuse: Sequence[str | os.PathLike[str]] = (), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pretrain ``config`` (resuming an interrupted run) and evaluate it; skipped when finished.

    ``pretrain_fn(config) -> run_dir`` replaces MV-MR pretraining (e.g. a peer method).
    ``reuse``: folders of other ablations/benchmarks; a finished row there with the identical
    config (run folder aside) and probe settings is copied instead of run again.
    The result (metrics, wall times, peak memory of this process) goes to ``<run>/result.json``.
    """
    run_dir = Path(config.output_dir)
    done = load_row_result(run_dir)
    if done is not None:
        log(f"[skip] {key or run_dir}: {run_dir / RESULT_FILE} exists")
        return done
    method = "mvmr" if pretrain_fn is None else f"peer:{(extra or {}).get('method', 'custom')}"
    if reuse:
        found = find_reusable(config, probe, reuse, method)
        if found is not None:
            src, res = found
            res = {**res, "key": key or res.get("key"), "reused_from": str(src)}
            _atomic_json(run_dir / RESULT_FILE, res)
            log(f"[reuse] {key or run_dir}: identical config and probe in {src}")
            return res
    from mvmr.config import to_dict

    log(f"[run] {key or run_dir} -> {run_dir}")
    t0 = time.perf_counter()
    if pretrain_fn is None:
        from mvmr.training.trainer import pretrain

        pretrain(config, resume="auto", trainer_overrides=dict(trainer_overrides or {}))
    else:
        pretrain_fn(config)
    t1 = time.perf_counter()
    extractor = encoder_of_run(run_dir)
    train_ds, test_ds = probe_datasets(probe, config)
    metrics = evaluate_extractor(extractor, train_ds, test_ds, probe, encoder=f"checkpoint:{run_dir}",
                                 dataset=f"{probe.kind or config.data.kind}:{probe.root or config.data.root}",
                                 save_dir=run_dir)
    t2 = time.perf_counter()
    result = {
        "key": key,
        **metrics,
        "pretrain_s": round(t1 - t0, 1),
        "eval_s": round(t2 - t1, 1),
        "wall_s": round(t2 - t0, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "seed": config.trainer.seed,
        "epochs": config.trainer.max_epochs,
        "pretrain_method": method,
        "probe": asdict(probe),
        "config": to_dict(config),
        **dict(extra or {}),
    }
    _atomic_json(run_dir / RESULT_FILE, result)
    log(f"[done] {key}: linear top-1 {metrics['linear_top1']:.2f}, k-NN {metrics['knn_top1']:.2f}, {t2 - t0:.0f} s")
    return result


# ------------------------------------------------------------------------------------------
# Launcher, collection, plot
# ------------------------------------------------------------------------------------------
def launcher_commands(table: int, config: str, rows: Sequence[AblationRow], out: str, extra_args: Sequence[str],
                      overrides: Sequence[str]) -> list[str]:
    """One shell command per row (each runs that row alone, resumable), for a cluster's launcher."""
    cmds = []
    for row in rows:
        argv = ["mvmr", "ablate", "--table", str(table), "--config", str(config), "--rows", row.key, "--out", str(out),
                *extra_args, *overrides]
        cmds.append(shlex.join(argv))
    return cmds


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "—"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if v != v:  # NaN
        return "—"
    return f"{v:.{digits}f}"


def collect_markdown(table: int, rows: Sequence[AblationRow], results: Mapping[str, Mapping[str, Any] | None]) -> str:
    """The table in the paper's layout: its left-hand columns, ours (linear top-1/top-5, k-NN
    top-1, wall time) and the paper's numbers (STL10, ResNet50, 100 epochs) in a column beside."""
    if not rows:
        return ""
    left = list(rows[0].cells)
    with_top5 = table != 8
    head = [*left, "ours top-1", *(["ours top-5"] if with_top5 else []), "ours k-NN top-1", "wall (s)",
            "paper top-1", *(["paper top-5"] if with_top5 else []), "note"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(left) + ["---:"] * (len(head) - len(left) - 1) + ["---"]) + "|"]
    group = None
    for row in rows:
        if row.group and row.group != group:
            group = row.group
            lines.append("| " + " | ".join([f"**{group}**"] + [""] * (len(head) - 1)) + " |")
        r = results.get(row.key) or {}
        cells = [row.cells[c] for c in left]
        ours = [_fmt(r.get("linear_top1"))] + ([_fmt(r.get("linear_top5"))] if with_top5 else [])
        ours += [_fmt(r.get("knn_top1")), _fmt(r.get("wall_s"), 0)]
        paper = [_fmt(row.paper_top1)] + ([_fmt(row.paper_top5)] if with_top5 else [])
        note = row.paper_note if r else "; ".join(x for x in (row.paper_note, "not run") if x)
        lines.append("| " + " | ".join([*cells, *ours, *paper, note]) + " |")
    return "\n".join(lines) + "\n"


def plot_table(table: int, rows: Sequence[AblationRow], results: Mapping[str, Mapping[str, Any] | None],
               path: str | os.PathLike[str]) -> Path | None:
    """A bar chart of our linear top-1 beside the paper's for the rows that ran (PNG)."""
    ran = [r for r in rows if results.get(r.key)]
    if not ran:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(ran))
    ours = [float(results[r.key]["linear_top1"]) for r in ran]
    paper = [float("nan") if r.paper_top1 is None else r.paper_top1 for r in ran]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.6 * len(ran) + 2), 4.0))
    ax.bar(x - 0.2, ours, 0.4, label="ours (linear top-1)")
    ax.bar(x + 0.2, paper, 0.4, label="paper (STL10, 100 ep.)", alpha=0.6)
    ax.set_xticks(x)
    ax.set_xticklabels([r.key or "none" for r in ran], rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("top-1 (%)")
    ax.set_title(f"MV-MR ablation, Table {table}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
