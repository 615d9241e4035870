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

    python benchmarks/step_bench.py                      # resnet18, small_images, 96 px, B=32, CPU
    python benchmarks/step_bench.py --no-small-images --steps 5
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from _data import SHARED_DATA, extract_once

REPO = Path(__file__).resolve().parents[1]
REPS = ["pixels", "scatnet", "augmented_pixels", "hog", "local_std"]


def _images(root: Path | None, size: int, n: int):
    """``(dataset, first n items)`` of Imagenette val (real 96 px images), extracted if needed."""
    from mvmr.data import DatasetSubset, build_dataset

    if root is None:
        root = extract_once(SHARED_DATA / "imagenette96.tar.gz", "imagenette96",
                            hint="or pass --data, an ImageFolder root with val/")
    base = build_dataset("imagefolder", root, split="val", size=size)
    step = max(1, len(base) // n)
    return DatasetSubset(base, list(range(0, step * n, step)))


def main() -> None:
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
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    from mvmr.config import OptimConfig, ProbeConfig
    from mvmr.data import TwoViews
    from mvmr.transforms.augmentation import PaperAugmentation
    from mvmr.losses import MVMRLoss, variance_hinge
    from mvmr.models import build_model
    from mvmr.representations import build
    from mvmr.sources import CachedSource, LiveSource
    from mvmr.methods import MVMR, Method, StepOutput
    from mvmr.training.module import PretrainingModule

    device = torch.device(args.device)
    data = _images(args.data, args.size, args.batch)
    views = TwoViews(data, size=args.size, augmentation=PaperAugmentation(args.size), seed=0)
    items = [views[i] for i in range(args.batch)]
    batch = (torch.stack([it[0] for it in items]).to(device), torch.stack([it[1] for it in items]).to(device),
             torch.tensor([it[2] for it in items], device=device), torch.tensor([it[3] for it in items], device=device))

    reps = {name: build(name).to(device) for name in REPS}
    deterministic = {k: v for k, v in reps.items() if v.deterministic}
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        cached = CachedSource(Path(tmp) / "cache", deterministic, dataset=data, image_size=args.size,
                              batch_size=args.batch, progress=False)
        cached.prepare(device)
        build_s = time.perf_counter() - t0
        live = LiveSource(reps)
        live_augmented = LiveSource({"augmented_pixels": reps["augmented_pixels"]})
        for source in (live, live_augmented):
            source.prepare(device)

        class L1Only(Method):
            def step(self, model, b):
                x_clean, x_aug, _, _ = b
                h, z = model.forward_with_features(x_clean)
                z_aug = model(x_aug)
                loss = torch.nn.functional.mse_loss(z, z_aug) + variance_hinge(z) + variance_hinge(z_aug)
                return StepOutput(loss=loss, terms={"loss": loss.detach()}, features=h, embeddings=z)

        def module(method, sources):
            torch.manual_seed(0)
            model = build_model(args.encoder, args.projector, small_images=args.small_images).to(device)
            method = method or MVMR(MVMRLoss(), sources, order=REPS)
            m = PretrainingModule(model, method, feature_dim=model.spec.feature_dim, optim=OptimConfig(),
                                  probe=ProbeConfig(enabled=False), num_classes=None, batch_size=args.batch)
            return m, torch.optim.Adam(m.model.parameters(), lr=1e-4)

        variants = {
            "L1 only": module(L1Only(), []),
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

        rep_cost = {}
        with torch.no_grad():
            x = batch[0].float()
            for name, rep in reps.items():
                rep(x)
                t = time.perf_counter()
                for _ in range(3):
                    rep(x)
                rep_cost[name] = (time.perf_counter() - t) / 3
            t = time.perf_counter()
            for _ in range(3):
                cached(batch[0], batch[2])
            cache_read = (time.perf_counter() - t) / 3

    base = statistics.median(times["L1 only"])
    print(f"\n{args.encoder} small_images={args.small_images}, projector {args.projector}, {args.size} px, "
          f"B={args.batch}, {args.device}, {args.threads} threads; median of {args.steps} steps after 1 warm-up")
    print(f"| variant              | step (s) | vs L1 |")
    print(f"|----------------------|---------:|------:|")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"| {name:20s} | {med:8.3f} | {med / base:5.3f} |")
    ratio = statistics.median(times["MV-MR cache"]) / base
    print(f"target MV-MR cache / L1 <= 1.10: {'met' if ratio <= 1.10 else 'NOT met'} ({ratio:.3f})")
    print("\nrepresentation cost without cache (one batch, no_grad):")
    for name, cost in sorted(rep_cost.items(), key=lambda kv: -kv[1]):
        print(f"  {name:18s} {1000 * cost:8.1f} ms")
    print(f"  -> most expensive: {max(rep_cost, key=rep_cost.get)}")
    print(f"cache read of one batch ({len(deterministic)} reps): {1000 * cache_read:.1f} ms; "
          f"cache build for {len(data)} images: {build_s:.1f} s")


if __name__ == "__main__":
    main()
