"""Equal-budget accuracy benchmark: MV-MR variants vs VICReg and Barlow Twins (CIFAR-10 or Imagenette).

Every trained row uses the same encoder (torchvision resnet18 with its standard stem, at 32 px on
CIFAR-10 or 64 px on Imagenette-96),
the same projector, the same augmentation (the paper's), the same optimiser and schedule, the
same pretraining images and the same budget (epochs, or wall-clock minutes); only the loss
differs. Rows:

- ``mvmr_paper``: MV-MR as in the paper (L1 + L2 + L3, L3 maximises dCor^2, all five representations)
- ``mvmr_reference_code``: the authors' code (L3 *minimised*, dCor as R; :data:`mvmr.losses.REFERENCE_CODE`)
- ``l1``, ``l1_l2``, ``l1_l3``: MV-MR with loss terms removed (weights set to 0)
- ``vicreg``, ``barlow_twins``: ``method=vicreg`` / ``method=barlow_twins`` of :mod:`mvmr.methods`
  (the losses of the ``lightly`` package, ``pip install 'mvmr[bench]'``)
- reference rows: ``random`` (a seeded random resnet18) and a probe on each hand-crafted
  representation alone (``rep_hog``, ``rep_local_std``, ``rep_pixels``, ``rep_scatnet``)

Evaluation for every row: linear probe top-1 (epoch chosen on a 10 % hold-out of the probe's
training images) and weighted k-NN top-1 (k = 20), via :func:`mvmr.evaluation.evaluate_frozen`.

Defaults: 10,000 fixed training images for pretraining, the full training set (50,000) for
the probes, the full test set (10,000) for evaluation. Each row runs in its own subprocess so
that its peak memory (``ru_maxrss``) is its own; a row whose ``<out>/<row>/result.json`` exists
is skipped, and an interrupted one resumes from its last checkpoint (written at every epoch's end
and when SIGTERM stops it), its ``pretrain (s)`` summing its sessions. Output: ``<out>/accuracy.md``
(one Markdown table) and ``accuracy.png``.

Example (a small CPU run)::

    python benchmarks/accuracy.py --pretrain-size 3072 --probe-train-size 10000 --probe-test-size 5000 \\
        --epochs 2 --batch-size 128 --projector 1024-1024-1024 --out runs/bench-accuracy
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from torch import nn

REPO = Path(__file__).resolve().parents[1]
from _children import Children  # noqa: E402
from _data import SHARED_DATA, TEST_DATA, extract_once  # noqa: E402
from _targets import paper_items  # noqa: E402

#: --dataset -> (archive in ../shared/data, its folder, test split, image size)
DATASETS: dict[str, tuple[str, str, str, int]] = {
    "cifar10": ("cifar10-jpeg.tar.gz", "cifar10", "test", 32),
    "imagenette": ("imagenette96.tar.gz", "imagenette96", "val", 64),
}

#: solo-learn's optimiser for CIFAR (its lr is given for batch 256; the lr itself is each row's)
_LARS = [
    "optim.optimizer=lars",
    "optim.trust_coefficient=0.02",
    "optim.lars_clip_lr=true",
    "optim.momentum=0.9",
    "optim.lr_scaling=linear",
    "optim.base_batch_size=256",
    "optim.warmup_epochs=0.5",
]

#: method -> (label, config overrides: every row is one config of the same run, only the loss differs)
METHODS: dict[str, tuple[str, list[str]]] = {
    "mvmr_paper": ("MV-MR, paper (L1+L2+L3, L3 max.)", []),
    "mvmr_reference_code": ("MV-MR, reference code (L3 min., R)", ["loss.l3=minimize", "loss.squared=false"]),
    "l1": ("MV-MR, L1 only", ["loss.alpha=0", "loss.beta=0", "representations.items=[]"]),
    "l1_l2": ("MV-MR, L1+L2", ["loss.beta=0", "representations.items=[]"]),
    "l1_l3": ("MV-MR, L1+L3", ["loss.alpha=0"]),
    # issue 27: ScatNet (and HOG) learnt through a cosine regression head (SimReg) as well as, or instead
    # of, dCor; ScatNet's 15,552 values are regressed in the cache's seeded projection to 4,096 (the
    # other representations have at most 3,072 at 32 px and are left as they are)
    "sc_cos": ("MV-MR, ScatNet by cosine", [paper_items(scatnet="cosine"), "representations.project_dim=4096"]),
    "sc_dcos": (
        "MV-MR, ScatNet by dCor+cosine",
        [paper_items(scatnet="dcor+cosine"), "representations.project_dim=4096"],
    ),
    "sc_hog_dcos": (
        "MV-MR, ScatNet+HOG by dCor+cosine",
        [paper_items(scatnet="dcor+cosine", hog="dcor+cosine"), "representations.project_dim=4096"],
    ),
    "sc_dcos_aug": (
        "MV-MR, ScatNet by dCor+cosine, augmented view",
        [paper_items(scatnet="dcor+cosine@augmented"), "representations.project_dim=4096"],
    ),
    "sc_cos_aug": (
        "MV-MR, ScatNet by cosine, augmented view",
        [paper_items(scatnet="cosine@augmented"), "representations.project_dim=4096"],
    ),
    "sc_cos_lin": (
        "MV-MR, ScatNet by cosine, linear head",
        [paper_items(scatnet="cosine"), "representations.project_dim=4096", "regression.depth=1"],
    ),
    "sc_cos_aug_lin": (
        "MV-MR, ScatNet by cosine, augmented view, linear head",
        [paper_items(scatnet="cosine@augmented"), "representations.project_dim=4096", "regression.depth=1"],
    ),
    "all_aug": (
        "MV-MR, every deterministic target of the augmented view",
        [
            paper_items(
                pixels="dcor@augmented", scatnet="dcor@augmented", hog="dcor@augmented", local_std="dcor@augmented"
            )
        ],
    ),
    "sc_cos_w4": (
        "MV-MR, ScatNet by cosine, weight 4",
        [paper_items(scatnet="cosine"), "representations.project_dim=4096", "regression.weight=4"],
    ),
    "sc_cos_aug_lin_w4": (
        "MV-MR, ScatNet by cosine, augmented view, linear head, weight 4",
        [
            paper_items(scatnet="cosine@augmented"),
            "representations.project_dim=4096",
            "regression.depth=1",
            "regression.weight=4",
        ],
    ),
    "sc_hog_cos": (
        "MV-MR, ScatNet+HOG by cosine",
        [paper_items(scatnet="cosine", hog="cosine"), "representations.project_dim=4096"],
    ),
    "det_cos": (
        "MV-MR, pixels+ScatNet+HOG+local std by cosine",
        [
            paper_items(pixels="cosine", scatnet="cosine", hog="cosine", local_std="cosine"),
            "representations.project_dim=4096",
        ],
    ),
    "vicreg": ("VICReg (lightly)", ["method=vicreg"]),
    "barlow_twins": ("Barlow Twins (lightly)", ["method=barlow_twins"]),
    # BYOL's own heads (hidden 4096, output 256; the paper's Table 2 compares BYOL), momentum 0.99 -> 1
    "byol": ("BYOL (lightly), projection 4096-256", ["method=byol", "model.projector='4096-256'"]),
    # issue 29: the peers with their own settings for small images, after solo-learn's CIFAR configs: LARS
    # (eta 0.02, the adaptive rate clipped at lr, biases and norms excluded), the lr given for batch 256 and
    # scaled linearly to the batch, a warm-up cosine schedule; VICReg 25/25/1 (lightly's defaults) and Barlow
    # Twins (lambda 0.0051, the loss scaled by 0.1) on 2048-2048-2048; BYOL on 4096-256 heads with a 4096
    # predictor, momentum 0.99 -> 1. What still differs: solo-learn's 1000 epochs, batch 256, its asymmetric
    # augmentations (solarisation) and warm-up of 10 epochs. `peer_sweep.py` sweeps their lr around these values.
    "vicreg_tuned": (
        "VICReg (lightly), solo-learn's CIFAR settings",
        ["method=vicreg", "model.projector='2048-2048-2048'", *_LARS, "optim.lr=0.3", "optim.weight_decay=1e-4"],
    ),
    "barlow_twins_tuned": (
        "Barlow Twins (lightly), solo-learn's CIFAR settings",
        [
            "method=barlow_twins",
            "model.projector='2048-2048-2048'",
            "method_kwargs={lambda_param: 0.0051, loss_scale: 0.1}",
            *_LARS,
            "optim.lr=0.3",
            "optim.weight_decay=1e-4",
        ],
    ),
    "byol_tuned": (
        "BYOL (lightly), solo-learn's CIFAR settings",
        [
            "method=byol",
            "model.projector='4096-256'",
            "method_kwargs={predictor_hidden: 4096}",
            *_LARS,
            "optim.lr=1.0",
            "optim.weight_decay=1e-5",
        ],
    ),
}
REFERENCES: dict[str, str] = {
    "random": "random resnet18 (no training)",
    "rep_hog": "HOG alone",
    "rep_local_std": "local std (LSD) alone",
    "rep_pixels": "pixels alone",
    "rep_scatnet": "ScatNet alone",
    "rep_scatnet_p4096": "ScatNet alone, seeded projection to 4096 (the regressed target)",
    "rep_scatnet_p512": "ScatNet alone, seeded projection to 512 (the encoder's width)",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--dataset",
        choices=sorted(DATASETS),
        default="cifar10",
        help="cifar10 (32 px, scored on test/) or imagenette (Imagenette-96 at 64 px, scored on val/)",
    )
    p.add_argument(
        "--data",
        default=None,
        help="ImageFolder root, or the .tar.gz holding it (default: the dataset's archive in ../shared/data, "
        "extracted to .test-data)",
    )
    p.add_argument("--out", default="runs/bench-accuracy", help="output folder (one sub-folder per row)")
    p.add_argument(
        "--pretrain-size",
        type=int,
        default=10_000,
        help="fixed subset (seed 0) of training images for pretraining (0: all of them)",
    )
    p.add_argument(
        "--probe-train-size",
        type=int,
        default=None,
        help="fixed subset of training images for the probes (default: all)",
    )
    p.add_argument("--probe-test-size", type=int, default=None, help="fixed subset of test images (default: all)")
    p.add_argument("--epochs", type=int, default=100, help="pretraining epochs (the budget)")
    p.add_argument(
        "--minutes", type=float, default=None, help="wall-clock budget per row instead of epochs (Lightning max_time)"
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--lr", type=float, default=1e-4, help="Adam lr (paper: 1e-4), cosine schedule")
    p.add_argument("--projector", default="8192-8192-8192")
    p.add_argument("--probe-epochs", type=int, default=100)
    p.add_argument("--seeds", default="0,1", help="seeds of the MV-MR paper and VICReg rows (the others use the first)")
    p.add_argument("--all-seeds", action="store_true", help="every trained row with every seed")
    p.add_argument(
        "--rows",
        nargs="+",
        default=None,
        help="only these rows (method or method@seed, e.g. vicreg@1; space- or comma-separated)",
    )
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument(
        "--cache",
        default=None,
        metavar="DIR",
        help="cache the deterministic representations under DIR (one sub-folder per representation set; "
        "per seed too only with a projection)",
    )
    p.add_argument("--list", action="store_true", help="list the rows and exit")
    p.add_argument(
        "--print-overrides",
        action="store_true",
        help="print the config overrides of the MV-MR rows (seed 0) and exit, e.g. to give `mvmr ablate` the same base",
    )
    p.add_argument("--collect", action="store_true", help="run nothing; write the table from finished rows")
    p.add_argument(
        "--records",
        default=None,
        metavar="FILE",
        help="also write the finished rows' results (metrics, settings, times, machine) to this JSON",
    )
    p.add_argument(
        "--update",
        action="store_true",
        help="with --records: replace only the records of the rows finished in --out (by key) and keep the "
        "file's other records (a partial re-run, e.g. the reference rows alone)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override applied after every row's own (repeatable), e.g. optim.lr=0.1 for a sweep",
    )
    p.add_argument("--_row", default=None, help=argparse.SUPPRESS)  # internal: run this one row here
    args = p.parse_args(argv)
    if args.update and not args.records:
        p.error("--update replaces records in the file --records names: give --records FILE")
    return args


# ------------------------------------------------------------------------------------------ data
def data_root(args: argparse.Namespace) -> Path:
    """The ImageFolder root (train/ and a test split), extracting the archive once into .test-data/."""
    archive, folder, _, _ = DATASETS[args.dataset]
    path = Path(args.data) if args.data else SHARED_DATA / archive
    if path.is_dir():
        return path
    return extract_once(path, folder, hint="give --data ROOT or the .tar.gz")


def image_size(args: argparse.Namespace) -> int:
    return DATASETS[args.dataset][3]


def pretrain_root(root: Path, size: int) -> Path:
    """An ImageFolder of ``size`` fixed (seed 0) training images, as symbolic links (one per image)."""
    import numpy as np

    files = sorted(root.joinpath("train").glob("*/*.jpg"))
    if size <= 0 or size >= len(files):
        return root
    out = TEST_DATA / f"{root.name}-pretrain{size}"
    marker = out / ".done"
    if marker.exists():
        return out
    chosen = np.sort(np.random.default_rng(0).choice(len(files), size=size, replace=False))
    for i in chosen:
        src = files[int(i)].resolve()
        dst = out / "train" / src.parent.name / src.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if not dst.exists():
            dst.symlink_to(src)
    marker.touch()
    return out


# ------------------------------------------------------------------------------------------ rows
def all_rows(args: argparse.Namespace) -> list[tuple[str, str, int]]:
    """(row key, method, seed) in table order."""
    seeds = [int(s) for s in str(args.seeds).split(",") if s.strip()]
    rows = []
    for method in METHODS:
        use = seeds if (args.all_seeds or method in ("mvmr_paper", "vicreg")) else seeds[:1]
        rows += [(f"{method}@{s}", method, s) for s in use]
    rows += [(ref, ref, seeds[0]) for ref in REFERENCES]
    if args.rows:
        wanted = {w.strip() for r in args.rows for w in r.split(",") if w.strip()}  # "a b" or "a,b"
        unknown = sorted(w for w in wanted if not any(w in (key, method) for key, method, _ in rows))
        if unknown:
            raise SystemExit(f"unknown row(s) {', '.join(unknown)} (with --seeds {args.seeds}); --list shows the rows")
        rows = [r for r in rows if r[0] in wanted or r[1] in wanted]
    return rows


def base_overrides(args: argparse.Namespace, data_root: Path, seed: int, run_dir: Path | None) -> list[str]:
    import torch

    gpu = torch.cuda.is_available()
    return [
        f"name=mvmr-{args.dataset}",
        "data.kind=imagefolder",
        f"data.root={data_root}",
        "data.split=train",
        "data.subset=null",
        f"data.image_size={image_size(args)}",
        f"data.batch_size={args.batch_size}",
        f"data.num_workers={args.num_workers}",
        "data.val_fraction=0",
        "model.encoder=resnet18",
        "model.small_images=false",
        f"model.projector='{args.projector}'",
        "optim.optimizer=adam",
        f"optim.lr={args.lr}",
        "optim.scheduler=cosine",
        "optim.warmup_epochs=0",
        f"trainer.max_epochs={args.epochs if args.minutes is None else 10_000}",
        "trainer.max_steps=-1",
        f"trainer.precision={'16-mixed' if gpu else '32-true'}",
        "trainer.accumulate_grad_batches=1",
        "trainer.devices=1",
        "trainer.checkpoint_every_n_steps=null",
        "trainer.checkpoint_every_n_epochs=1000",
        "trainer.progress_bar=false",
        f"trainer.seed={seed}",
        "probe.enabled=false",
        f"representations.cache_dir={args.cache if args.cache else 'null'}",
        *([f"output_dir={run_dir}"] if run_dir is not None else []),
    ]


def run_one(args: argparse.Namespace, key: str) -> None:
    """Run row ``key`` in this process and write its result.json."""
    import torch

    from mvmr.config import load_config
    from mvmr.workflows import ablation

    rows = {r[0]: r for r in all_rows(argparse.Namespace(**{**vars(args), "rows": None}))}
    _, method, seed = rows[key]
    root = data_root(args)
    run_dir = Path(args.out) / key
    probe = ablation.ProbeSettings(
        kind="imagefolder",
        root=str(root),
        test_split=DATASETS[args.dataset][2],
        train_size=args.probe_train_size,
        test_size=args.probe_test_size,
        image_size=image_size(args),
        epochs=args.probe_epochs,
    )
    budget = f"{args.epochs} ep" if args.minutes is None else f"{args.minutes:g} min"
    from _provenance import provenance

    extra = {
        "method": method,
        "budget": budget,
        "pretrain_images": args.pretrain_size,
        "threads": torch.get_num_threads(),
        **provenance(),
    }  # where and with what the row ran
    if method in METHODS:
        config = ablation.with_shared_cache(
            load_config(
                "cifar10",
                base_overrides(args, pretrain_root(root, args.pretrain_size), seed, run_dir)
                + METHODS[method][1]
                + args.overrides,
            )
        )
        overrides = {"max_time": {"minutes": args.minutes}} if args.minutes is not None else {}
        ablation.run_row(config, probe, key=key, extra=extra, trainer_overrides=overrides)
        return
    # reference rows: evaluation only
    from mvmr.config import load_config as _load
    from mvmr.evaluation import FeatureExtractor, evaluate_frozen, resolve_encoder, save_result
    from mvmr.representations import build

    t0 = time.perf_counter()
    if method == "random":
        extractor = resolve_encoder(encoder="random:resnet18", small_images=False, seed=seed)
    else:
        name, _, projected = method[len("rep_") :].partition("_p")
        specs = {s.name: s for s in _load("cifar10").representations.items}  # the paper's kwargs
        kwargs = dict(specs[name].kwargs) if name in specs else {}
        rep = build(name, **kwargs)
        features: nn.Module = rep
        if projected:  # the cache's seeded Gaussian projection, as a regressed target or at the encoder's width
            from torch import nn

            from mvmr.representations.projection import RandomProjection

            raw = rep.output_dim(3, image_size(args), image_size(args))
            features = nn.Sequential(rep, nn.Flatten(), RandomProjection(raw, int(projected), seed, key=name))
        extractor = FeatureExtractor(
            features,
            mean=None,
            std=None,
            description=f"representation:{name}" + (f" projected to {projected}" if projected else ""),
            trainable=False,
        )
    train_ds, test_ds = ablation.probe_datasets(probe)
    evaluation = evaluate_frozen(
        extractor,
        train_ds,
        test_ds,
        linear=probe.linear_config(),
        knn=probe.knn_config(),
        encoder=method,
        dataset=str(root),
    )
    for protocol_result in evaluation.results:
        save_result(run_dir, protocol_result)
    metrics = evaluation.summary()
    wall = time.perf_counter() - t0
    result = {
        "key": key,
        **metrics,
        "pretrain_s": 0.0,
        "eval_s": round(wall, 1),
        "wall_s": round(wall, 1),
        "peak_rss_mib": round(ablation.peak_rss_mib(), 1),
        "seed": seed,
        "epochs": 0,
        **extra,
        "budget": "—",
        "pretrain_images": 0,
    }
    ablation.save_row_result(run_dir, result)
    print(f"[done] {key}: linear top-1 {metrics['linear_top1']:.2f}, k-NN {metrics['knn_top1']:.2f}, {wall:.0f} s")


# ------------------------------------------------------------------------------------------ table
ROW_HEAD = [
    "row",
    "method",
    "seed",
    "budget",
    "pretrain imgs",
    "linear top-1",
    "k-NN top-1",
    "val top-1",
    "feature dim",
    "pretrain (s)",
    "eval (s)",
    "wall (s)",
    "peak RSS (MiB)",
]


def row_line(key: str, label: str, seed: int, r: dict | None) -> str:
    """One row of the results table: a finished row's result (or its committed record), or 'not run'."""
    from mvmr.workflows import ablation

    if r is None:
        return f"| {key} | {label} | {seed} | — | — | not run | — | — | — | — | — | — | — |"
    f = ablation.format_value
    sessions = int(r.get("pretrain_sessions") or 1)  # a row interrupted and resumed ran in several
    pretrain = f(r["pretrain_s"], 0) + (f" ({sessions} sessions)" if sessions > 1 else "")
    return (
        f"| {key} | {label} | {r['seed']} | {r.get('budget', '—')} | {r.get('pretrain_images', '—')} | "
        f"{f(r['linear_top1'])} | {f(r['knn_top1'])} | {f(r.get('val_top1'))} | {r['feature_dim']} | {pretrain} | "
        f"{f(r['eval_s'], 0)} | {f(r['wall_s'], 0)} | {f(r['peak_rss_mib'], 0)} |"
    )


def results_tables(lines: list[str], by_method: dict[str, list[dict]]) -> str:
    """The rows' table, then the seed spread of every method with two seeds or more."""
    import statistics

    head = ["| " + " | ".join(ROW_HEAD) + " |", "|" + "|".join(["---"] * 5 + ["---:"] * (len(ROW_HEAD) - 5)) + "|"]
    spread = []
    for label, vals in by_method.items():
        if len(vals) >= 2:
            cells = []
            for metric in ("linear_top1", "knn_top1", "val_top1"):
                got = [v[metric] for v in vals if v.get(metric) is not None]
                ok = len(got) == len(vals)
                cells.append(f"{statistics.mean(got):.2f} ± {statistics.stdev(got):.2f}" if ok else "—")
            spread.append(f"| {label} | {len(vals)} | " + " | ".join(cells) + " |")
    md = "\n".join(head + lines) + "\n"
    if spread:
        md += (
            "\n| method | seeds | linear top-1 mean ± sd | k-NN top-1 mean ± sd | val top-1 mean ± sd |\n"
            "|---|---:|---:|---:|---:|\n" + "\n".join(spread) + "\n"
        )
    return md


def collect(args: argparse.Namespace) -> str:
    from mvmr.workflows import ablation

    rows = all_rows(args)
    lines: list[str] = []
    results: dict[str, dict[str, Any] | None] = {}
    by_method: dict[str, list[dict[str, Any]]] = {}
    for key, method, seed in rows:
        r = ablation.load_row_result(Path(args.out) / key)
        results[key] = r
        label = METHODS[method][0] if method in METHODS else REFERENCES[method]
        lines.append(row_line(key, label, seed, r))
        if r is not None and method in METHODS:
            by_method.setdefault(label, []).append(r)
    _plot(args, rows, results, Path(args.out) / "accuracy.png")
    return results_tables(lines, by_method)


def save_records(args: argparse.Namespace, path: Path) -> None:
    """The finished rows' results as one JSON list (commit it under docs/results/): see :func:`records`;
    with ``--update``, they replace only their own rows' records in ``path``."""
    from _provenance import updated_records, write_records

    found = records(args)
    write_records(path, updated_records(path, found, "key") if args.update else found)


def records(args: argparse.Namespace) -> list[dict]:
    """One record per finished row of ``args`` (rows without a result are left out): every metric, the
    row's overrides, the probe, the times and the machine; not the full config (its run folder has it)."""
    from _provenance import provenance, ran_on

    from mvmr.workflows import ablation

    here = provenance()
    keep = (
        "key",
        "linear_top1",
        "linear_top5",
        "knn_top1",
        "val_top1",
        "feature_dim",
        "num_train",
        "num_val",
        "num_test",
        "pretrain_s",
        "pretrain_sessions",
        "eval_s",
        "wall_s",
        "peak_rss_mib",
        "seed",
        "epochs",
        "budget",
        "pretrain_images",
        "threads",
        "method",
    )
    found: list[dict[str, Any]] = []
    for key, method, _ in all_rows(args):
        r = ablation.load_row_result(Path(args.out) / key)
        if r is None:
            continue
        label = METHODS[method][0] if method in METHODS else REFERENCES[method]
        found.append(
            {
                **{k: r.get(k) for k in keep},
                "label": label,
                "dataset": args.dataset,
                "optim": (r.get("config") or {}).get("optim"),  # the lr it ran with, --set included
                "overrides": [*METHODS[method][1], *args.overrides] if method in METHODS else [],
                **ran_on(r, here),
            }
        )
    return found


def _plot(args: argparse.Namespace, rows: list[tuple[str, str, int]], results: dict, path: Path) -> None:
    ran = [{**results[k], "key": k, "dataset": args.dataset} for k, _, _ in rows if results.get(k)]
    if ran:
        plot(ran, path)


def plot(records: list[dict], path: Path) -> None:
    """One pair of bars (linear and k-NN top-1) per finished row, from its result or its committed record; the
    title names the dataset, the pretraining images and the budget, the legend stands beside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import textwrap

    import matplotlib.pyplot as plt
    import numpy as np

    dataset = records[0].get("dataset", "cifar10")
    budgets = sorted({r["budget"] for r in records if r.get("budget") not in (None, "—")})
    images = sorted({r["pretrain_images"] for r in records if r.get("pretrain_images") not in (None, "—", 0)})
    seen = f"{images[0]:,} pretraining images" if len(images) == 1 else "all training images"
    x = np.arange(len(records))
    fig, ax = plt.subplots(figsize=(max(7.0, 0.55 * len(records) + 3.5), 4.4))
    ax.bar(x - 0.2, [r["linear_top1"] for r in records], 0.4, label="linear top-1")
    ax.bar(x + 0.2, [r["knn_top1"] for r in records], 0.4, label="k-NN top-1")
    ax.set_xticks(x)
    ax.set_xticklabels([r["key"] for r in records], rotation=45, ha="right", fontsize=8)
    split = DATASETS[dataset][2] if dataset in DATASETS else "test"
    ax.set_ylabel(f"{dataset} {split} accuracy (%)")
    tests = sorted({int(r["num_test"]) for r in records if r.get("num_test")})
    scored = f", scored on {tests[0]:,} {split} images" if len(tests) == 1 else ""
    title = f"{dataset}: {seen} x {' / '.join(budgets) or 'no'} pretraining{scored}; one bar per run, no error bars"
    ax.set_title("\n".join(textwrap.wrap(title, 70)), fontsize=10)  # wrapped: a long title is never cut off
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args._row:  # one row, in a child of the driver: its log gets the CLI's clean output (no library tips)
        from mvmr.training.quiet import clean_output

        with clean_output():
            run_one(args, args._row)
        return 0
    if args.print_overrides:
        root = data_root(args)
        print(
            " ".join(
                base_overrides(args, pretrain_root(root, args.pretrain_size), int(str(args.seeds).split(",")[0]), None)
            )
        )
        return 0
    if args.list:
        for key, method, _ in all_rows(args):
            print(key, "-", METHODS[method][0] if method in METHODS else REFERENCES[method])
        return 0
    from mvmr.workflows import ablation

    if not args.collect:
        root = data_root(args)
        pretrain_root(root, args.pretrain_size)
        forwarded = [a for a in (sys.argv[1:] if argv is None else argv)]
        with Children() as children:  # SIGTERM here stops the row running (it checkpoints) and the rest
            for key, _, _ in all_rows(args):
                if children.stopping:
                    break
                if ablation.load_row_result(Path(args.out) / key) is not None:
                    print(f"[skip] {key}: result exists", flush=True)
                    continue
                print(f"[row] {key}", flush=True)
                rc = children.start([sys.executable, str(Path(__file__).resolve()), *forwarded, "--_row", key]).wait()
                if rc != 0 and not children.stopping:  # a row stopped by SIGTERM checkpointed: no failure
                    print(f"[fail] {key}: exit status {rc}", flush=True)
        if children.stopping:
            print("[stop] SIGTERM: the running row was stopped (it resumes from its checkpoint next time)", flush=True)
            return 128 + signal.SIGTERM
    md = collect(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.records:
        save_records(args, Path(args.records))
    (out / "accuracy.md").write_text(md, encoding="utf-8")
    print(md, end="")
    print(f"\nwritten: {out / 'accuracy.md'}, {out / 'accuracy.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
