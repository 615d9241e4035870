"""Training-step cost of MV-MR against L1 alone, with and without the feature cache.

One encoder, one fixed batch of real images, three variants timed side by side in one process
(interleaved round by round, so that load on the machine hits all of them alike):

- ``L1 only``: invariance + variance hinges (eq. 7), no distance correlation, no representation;
- ``MV-MR fresh``: the full loss, all five representations computed on the clean view every step;
- ``MV-MR cache``: the full loss, the deterministic representations read from a FeatureCache
  (``augmented_pixels`` is random and always computed).

A step is: both views through encoder + projector, representations, loss, backward, Adam step
(:meth:`mvmr.training.module.PretrainingModule.ssl_step`, the code the trainer runs). Data loading is
left out (it is the same for all three). Also prints what each representation costs alone.

``--records FILE`` writes one JSON record per variant (its settings, every timed step, the command line,
threads and provenance), and one per representation's cost, the cache read and the cache build;
:func:`table` renders the variants' table from those records alone.

    python benchmarks/step_bench.py                      # resnet18, small_images, 96 px, B=32, CPU
    python benchmarks/step_bench.py --no-small-images --steps 5
    python benchmarks/step_bench.py --steps 3 --records docs/results/bench-step.json
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mvmr.data import DatasetSubset
    from mvmr.methods import Method
    from mvmr.models import MVMRModel
    from mvmr.sources import FeatureSource

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import SHARED_DATA, extract_once  # noqa: E402
from _provenance import command, provenance, write_records  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REPS = ["pixels", "scatnet", "augmented_pixels", "hog", "local_std"]
BASELINE = "L1 only"


def _images(root: Path | None, size: int, n: int) -> DatasetSubset:
    """``(dataset, first n items)`` of Imagenette val (real 96 px images), extracted if needed."""
    from mvmr.data import DatasetSubset, build_dataset

    if root is None:
        root = extract_once(
            SHARED_DATA / "imagenette96.tar.gz", "imagenette96", hint="or pass --data, an ImageFolder root with val/"
        )
    base = build_dataset("imagefolder", root, split="val", size=size)
    step = max(1, len(base) // n)
    return DatasetSubset(base, list(range(0, step * n, step)))


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md's training-step section from ``records`` alone: each variant's
    median step (s) and its ratio to the median step of ``L1 only``. Records of other kinds are ignored."""
    steps = [r for r in records if r["kind"] == "step"]
    base = statistics.median(next(r for r in steps if r["variant"] == BASELINE)["seconds"])
    lines = ["| variant | step (s) | vs L1 |", "|---|---:|---:|"]
    for r in steps:
        med = statistics.median(r["seconds"])
        lines.append(f"| {r['variant']} | {med:.2f} | {med / base:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--encoder", default="resnet18")
    p.add_argument("--small-images", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--projector", default="2048-2048-2048")
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=2, help="timed steps per variant (after one warm-up step)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--data", type=Path, default=None, help="ImageFolder root with val/ (default: Imagenette 96 px)")
    p.add_argument("--records", type=Path, default=None, metavar="FILE", help="write every row's record to this JSON")
    args = p.parse_args(argv)

    torch.set_num_threads(args.threads)
    from mvmr.config import OptimConfig, ProbeConfig
    from mvmr.data import TwoViews
    from mvmr.losses import MVMRLoss, variance_hinge
    from mvmr.methods import MVMR, Method, StepOutput
    from mvmr.models import build_model
    from mvmr.representations import build
    from mvmr.sources import CachedSource, LiveSource
    from mvmr.training.module import PretrainingModule
    from mvmr.transforms.augmentation import PaperAugmentation

    device = torch.device(args.device)
    data = _images(args.data, args.size, args.batch)
    views = TwoViews(data, size=args.size, augmentation=PaperAugmentation(args.size), seed=0)
    items = [views[i] for i in range(args.batch)]
    batch = (
        torch.stack([it[0] for it in items]).to(device),
        torch.stack([it[1] for it in items]).to(device),
        torch.tensor([it[2] for it in items], device=device),
        torch.tensor([it[3] for it in items], device=device),
    )

    reps = {name: build(name).to(device) for name in REPS}
    deterministic = {k: v for k, v in reps.items() if v.deterministic}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cached = CachedSource(
            Path(tmp) / "cache",
            deterministic,
            dataset=data,
            image_size=args.size,
            batch_size=args.batch,
            progress=False,
        )
        cached.prepare(device)
        build_s = time.perf_counter() - t0
        live = LiveSource(reps)
        live_augmented = LiveSource({"augmented_pixels": reps["augmented_pixels"]})
        for source in (live, live_augmented):
            source.prepare(device)

        class L1Only(Method):
            def step(self, model: MVMRModel, b: Any) -> StepOutput:
                x_clean, x_aug, _, _ = b
                h, z = model.forward_with_features(x_clean)
                z_aug = model(x_aug)
                loss = torch.nn.functional.mse_loss(z, z_aug) + variance_hinge(z) + variance_hinge(z_aug)
                return StepOutput(loss=loss, terms={"loss": loss.detach()}, features=h, embeddings=z)

        def module(method: Method | None, sources: list[FeatureSource]) -> tuple[PretrainingModule, torch.optim.Adam]:
            torch.manual_seed(0)
            model = build_model(args.encoder, args.projector, small_images=args.small_images).to(device)
            method = method or MVMR(MVMRLoss(), sources, order=REPS)
            assert model.spec is not None  # build_model's encoders always carry their spec
            m = PretrainingModule(
                model,
                method,
                feature_dim=model.spec.feature_dim,
                optim=OptimConfig(),
                probe=ProbeConfig(enabled=False),
                num_classes=None,
                batch_size=args.batch,
            )
            return m, torch.optim.Adam(m.model.parameters(), lr=1e-4)

        variants = {
            BASELINE: module(L1Only(), []),
            "MV-MR fresh (5 reps)": module(None, [live]),
            "MV-MR cache": module(None, [cached, live_augmented]),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for round_ in range(1 + args.steps):
            for name, (m, opt) in variants.items():
                if device.type == "cuda":
                    torch.cuda.synchronize()
                t = time.perf_counter()
                out = m.ssl_step(batch)
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if round_ > 0:
                    times[name].append(time.perf_counter() - t)

        def three_calls(fn: Any, *inputs: torch.Tensor) -> list[float]:
            """The seconds of each of 3 calls after a warm-up one."""
            fn(*inputs)
            seconds = []
            for _ in range(3):
                t = time.perf_counter()
                fn(*inputs)
                seconds.append(time.perf_counter() - t)
            return seconds

        with torch.no_grad():
            x = batch[0].float()
            rep_seconds = {name: three_calls(rep, x) for name, rep in reps.items()}
            read_seconds = three_calls(cached, batch[0], batch[2])

    settings = {
        "encoder": args.encoder,
        "small_images": args.small_images,
        "projector": args.projector,
        "size": args.size,
        "batch": args.batch,
        "device": args.device,
        "steps": args.steps,
        "warmup_steps": 1,
    }
    records: list[dict[str, Any]] = [{"kind": "step", "variant": name, "seconds": ts} for name, ts in times.items()]
    records += [{"kind": "representation", "name": name, "seconds": ts} for name, ts in rep_seconds.items()]
    records.append({"kind": "cache_read", "representations": sorted(deterministic), "seconds": read_seconds})
    records.append({"kind": "cache_build", "images": len(data), "seconds": [build_s]})
    common = {"command": command(argv, __file__), "threads": torch.get_num_threads(), **provenance()}
    records = [{**r, **settings, **common} for r in records]
    if args.records is not None:
        write_records(args.records, records)

    base = statistics.median(times[BASELINE])
    print(
        f"\n{args.encoder} small_images={args.small_images}, projector {args.projector}, {args.size} px, "
        f"B={args.batch}, {args.device}, {args.threads} threads; median of {args.steps} steps after 1 warm-up"
    )
    print(table(records), end="")
    ratio = statistics.median(times["MV-MR cache"]) / base
    print(f"target MV-MR cache / L1 <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'} ({ratio:.3f})")
    print("\nrepresentation cost without cache (one batch, no_grad; mean of 3 calls):")
    rep_cost = {name: statistics.mean(ts) for name, ts in rep_seconds.items()}
    for name, cost in sorted(rep_cost.items(), key=lambda kv: -kv[1]):
        print(f"  {name:18s} {1000 * cost:8.1f} ms")
    print(f"  -> most expensive: {max(rep_cost, key=lambda k: rep_cost[k])}")
    print(
        f"cache read of one batch ({len(deterministic)} reps): {1000 * statistics.mean(read_seconds):.1f} ms; "
        f"cache build for {len(data)} images: {build_s:.1f} s"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
