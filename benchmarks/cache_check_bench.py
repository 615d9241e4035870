"""What the feature cache's integrity checks cost a cached training step (issue 15).

Every read of a :class:`~mvmr.cache.FeatureCache` checks the CRC-32 of each chunk of rows the first
time this process touches it (and each file's size and header when it is opened). This benchmark
measures that cost side by side in one run, on two identical copies of one cache (one opened with
the checks, one with ``verify=False``), both in the page cache so that disk speed is left out:

1. **the cached read of a step**: ``cache.get(batch indices)`` for every batch of two epochs, in
   the training sampler's shuffled order, the two copies interleaved batch by batch (the order
   alternating). Epoch 1 includes checking every chunk once (a full read of the cache, the worst
   case: a fresh process); epoch 2 is the steady state (a lookup in the verified-chunk table);
2. **the whole cached MV-MR step** (both views through encoder + projector, the targets read from
   the cache, the MV-MR loss, backward, Adam step: ``PretrainingModule.ssl_step``, the code the trainer
   runs) with each copy, interleaved, on real images;
3. the overhead: the extra read time per step (1) over the step time without checks (2), for
   the first epoch and for the steady state, and the direct ratio of the two step times (2).

The cache is shaped like a projected one (``imagenet.yaml``: each representation projected to
4096 dimensions); its values come from a cheap synthetic representation (the check's cost depends
on the bytes, not on what they mean).

``--records FILE`` writes one JSON record per epoch's read row (every batch's read time of each copy) and one
per copy's whole step (every timed step), each with the settings, the command line, threads and provenance;
:func:`table` renders the table from those records alone.

    python benchmarks/cache_check_bench.py                          # 4096 rows x 4 x 4096, resnet18, 96 px, B=32
    python benchmarks/cache_check_bench.py --rows 8192 --steps 5
    python benchmarks/cache_check_bench.py --steps 2 --records docs/results/bench-cache-check.json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch.utils.data import TensorDataset

if TYPE_CHECKING:
    from mvmr.representations.base import Representation

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import SHARED_DATA, extract_once  # noqa: E402
from _provenance import command, provenance, write_records  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EPOCH_LABELS = {1: "epoch 1 (every chunk checked once)", 2: "epoch 2 (steady state)"}


def _synthetic_representations(dims: list[int]) -> dict[str, Representation]:
    """Deterministic representations of ``dims`` output values: fixed random maps of the image."""
    from mvmr.representations.base import Representation

    class Synthetic(Representation):
        deterministic = True
        w: torch.Tensor  # the buffer registered below

        def __init__(self, name: str, dim: int) -> None:
            super().__init__()
            self.name, self.dim = name, dim
            self.register_buffer("w", torch.randn(3 * 4 * 4, dim, generator=torch.Generator().manual_seed(dim)) / 7)

        def config(self) -> dict[str, int]:
            return {"dim": self.dim}

        def output_dim(self, channels: int, height: int, width: int) -> int:
            return self.dim

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            return torch.tanh(images.flatten(1) @ self.w)

    return {f"rep{k}": Synthetic(f"rep{k}", d) for k, d in enumerate(dims)}


def _real_batch(size: int, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One fixed two-view batch of real Imagenette images (as benchmarks/step_bench.py)."""
    from mvmr.data import DatasetSubset, TwoViews, build_dataset
    from mvmr.transforms.augmentation import PaperAugmentation

    root = extract_once(SHARED_DATA / "imagenette96.tar.gz", "imagenette96", hint="MVMR_SHARED_DATA")
    base = build_dataset("imagefolder", root, split="val", size=size)
    data = DatasetSubset(base, list(range(0, len(base), max(1, len(base) // batch)))[:batch])
    views = TwoViews(data, size=size, augmentation=PaperAugmentation(size), seed=0)
    items = [views[i] for i in range(batch)]
    return (
        torch.stack([it[0] for it in items]),
        torch.stack([it[1] for it in items]),
        torch.zeros(batch, dtype=torch.long),
        torch.tensor([it[3] for it in items]),
    )


def _warm(folder: Path) -> None:
    """Read every file once: both copies start in the page cache."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            while f.read(2**24):
                pass


def _step_median(records: list[dict[str, Any]], copy: str) -> float:
    """The median whole cached step (s) with the ``copy`` (``plain`` or ``checked``) of the cache."""
    return statistics.median(next(r for r in records if r["kind"] == "step" and r["copy"] == copy)["seconds"])


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md's cache-check section from ``records`` alone: per epoch, the mean
    read per step of each copy (ms), the difference, and the difference over the median whole step without checks."""
    step_plain = _step_median(records, "plain")
    lines = [
        "| | read per step, no check (ms) | read per step, checked (ms) | extra per step (ms) | extra / whole step |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in records:
        if r["kind"] != "read":
            continue
        plain = 1000 * sum(r["plain_s"]) / len(r["plain_s"])
        checked = 1000 * sum(r["checked_s"]) / len(r["checked_s"])
        extra = checked - plain
        label = EPOCH_LABELS.get(r["epoch"], f"epoch {r['epoch']}")
        lines.append(
            f"| {label} | {plain:.2f} | {checked:.2f} | {extra:.2f} | {100 * extra / (1000 * step_plain):.3f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=4096, help="images in the cache")
    p.add_argument("--dims", default="4096,4096,4096,4096", help="stored dimension of each representation")
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--projector", default="2048-2048-2048")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=3, help="timed whole steps per variant (after one warm-up)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--records", type=Path, default=None, metavar="FILE", help="write every row's record to this JSON")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    from mvmr.cache import FeatureCache, build_cache
    from mvmr.config import OptimConfig, ProbeConfig
    from mvmr.losses import MVMRLoss
    from mvmr.methods import MVMR
    from mvmr.models import build_model
    from mvmr.sources import CachedSource
    from mvmr.training.module import PretrainingModule
    from mvmr.training.sampling import EpochBatchSampler

    dims = [int(d) for d in args.dims.split(",")]
    reps = _synthetic_representations(dims)
    images = torch.rand(args.rows, 3, 4, 4, generator=torch.Generator().manual_seed(0))
    with tempfile.TemporaryDirectory(dir=REPO / ".test-data" if (REPO / ".test-data").is_dir() else None) as tmp:
        checked_root, plain_root = Path(tmp) / "checked", Path(tmp) / "plain"
        t0 = time.perf_counter()
        build_cache(
            checked_root,
            dataset=TensorDataset(images),
            representations=reps,
            image_size=4,
            batch_size=256,
            progress=False,
        )
        build_s = time.perf_counter() - t0
        shutil.copytree(checked_root, plain_root)
        size_mib = sum(f.stat().st_size for f in checked_root.iterdir()) / 2**20
        for folder in (checked_root, plain_root):
            _warm(folder)

        # 1. the cached read of every step of two epochs, interleaved batch by batch
        caches = {"checked": FeatureCache.open(checked_root), "plain": FeatureCache.open(plain_root, verify=False)}
        sampler = EpochBatchSampler(np.arange(args.rows), args.batch, seed=0)
        reads: dict[tuple[str, int], list[float]] = {(name, e): [] for name in caches for e in (0, 1)}
        steps_per_epoch = len(sampler)
        for epoch in (0, 1):
            sampler.set_epoch(epoch)
            for b, pairs in enumerate(sampler):
                index = torch.tensor([i for _, i in pairs])
                for name in ("checked", "plain") if b % 2 == 0 else ("plain", "checked"):
                    t = time.perf_counter()
                    caches[name].get(index)
                    reads[(name, epoch)].append(time.perf_counter() - t)

        # 2. the whole cached MV-MR step with each copy
        batch = _real_batch(args.size, args.batch)
        variants = {}
        for name, cache in caches.items():
            source = CachedSource(Path(cache.root), reps, dataset=TensorDataset(images), image_size=4)
            source.cache = cache  # opened above (already verified by part 1: the steady state)
            torch.manual_seed(0)
            model = build_model(args.encoder, args.projector, small_images=True)
            assert model.spec is not None  # build_model's encoders always carry their spec
            module = PretrainingModule(
                model,
                MVMR(MVMRLoss(), [source]),
                feature_dim=model.spec.feature_dim,
                optim=OptimConfig(),
                probe=ProbeConfig(enabled=False),
                num_classes=None,
                batch_size=args.batch,
            )
            variants[name] = (module, torch.optim.Adam(module.model.parameters(), lr=1e-4))
        step_times: dict[str, list[float]] = {name: [] for name in variants}
        order = np.random.default_rng(1).permutation(args.rows)
        for round_ in range(1 + args.steps):
            index = torch.as_tensor(order[round_ * args.batch : (round_ + 1) * args.batch])
            two_views = (batch[0], batch[1], index, batch[3])
            for name in ("checked", "plain") if round_ % 2 == 0 else ("plain", "checked"):
                module, opt = variants[name]
                t = time.perf_counter()
                out = module.ssl_step(two_views)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                if round_ > 0:
                    step_times[name].append(time.perf_counter() - t)

    settings = {
        "rows": args.rows,
        "dims": dims,
        "dtype": "float16",
        "cache_mib": size_mib,
        "cache_build_s": build_s,
        "steps_per_epoch": steps_per_epoch,
        "batch": args.batch,
        "encoder": args.encoder,
        "small_images": True,
        "projector": args.projector,
        "size": args.size,
        "steps": args.steps,
        "warmup_steps": 1,
    }
    records: list[dict[str, Any]] = [
        {"kind": "read", "epoch": epoch + 1, "plain_s": reads[("plain", epoch)], "checked_s": reads[("checked", epoch)]}
        for epoch in (0, 1)
    ]
    records += [{"kind": "step", "copy": name, "seconds": step_times[name]} for name in ("plain", "checked")]
    common = {"command": command(argv, __file__), "threads": torch.get_num_threads(), **provenance()}
    records = [{**r, **settings, **common} for r in records]
    if args.records is not None:
        write_records(args.records, records)

    step_plain, step_checked = _step_median(records, "plain"), _step_median(records, "checked")
    print(
        f"\ncache: {args.rows} rows x {dims} float16 = {size_mib:.0f} MiB (built in {build_s:.1f} s), "
        f"{steps_per_epoch} steps of B={args.batch} an epoch; {args.encoder} small_images, projector "
        f"{args.projector}, {args.size} px, {args.threads} threads; median of {args.steps} whole steps\n"
    )
    print(table(records), end="")
    print(
        f"\nwhole cached step: {step_plain:.3f} s without checks, {step_checked:.3f} s with "
        f"(ratio {step_checked / step_plain:.3f}, measured; the step-to-step noise is larger than the difference)"
    )
    worst = (sum(reads[("checked", 0)]) - sum(reads[("plain", 0)])) / steps_per_epoch / step_plain
    print(
        f"target (check < 2% of a cached step): {'met' if worst < 0.02 else 'NOT met'} "
        f"(worst case, epoch 1: {100 * worst:.3f}%)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
