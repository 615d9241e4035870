"""How close ``mvmr plan``'s feature-cache build estimate comes to the real build, side by side.

``mvmr plan`` times each cached representation on a batch of ``--timing-images`` random images and
multiplies by the number of images; the real build (what ``mvmr train`` does before its first step)
runs the same representations over the dataset in batches of 64 or more. This script, in one
process and one run, for the config given:

1. the plan's estimate with each ``--timing-images`` value asked for;
2. the real build of the cache (``CachedSource.prepare``, the trainer's code) into a fresh folder;
3. the first estimate again (to see drift of the machine's speed during the run);

then prints estimate / measured for each. Decoding the images is part of the real build and not of
the estimate, so a ratio a little under 1 is expected.

    python benchmarks/plan_cache_estimate.py                         # the demo config: 5,000 Fashion-MNIST images
    python benchmarks/plan_cache_estimate.py --config cifar10 data.root=.test-data/cifar10 data.kind=imagefolder
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main(argv: list[str] | None = None) -> int:
    from mvmr.config import load_config
    from mvmr.training.build import build_data, build_sources
    from mvmr.workflows.plan import make_plan

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--timing-images", type=int, nargs="+", default=[4, 32])
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(a.config, [*a.overrides, f"representations.cache_dir={tmp}/cache", f"output_dir={tmp}/run",
                                        "trainer.progress_bar=false"])
        estimates = []
        for n in a.timing_images:
            plan = make_plan(config, timing_images=n, device="cpu")
            estimates.append((f"plan, --timing-images {n}", plan.cache_build_seconds))
        data = build_data(config)
        sources = [s for s in build_sources(config, data.base) if type(s).__name__ == "CachedSource"]
        start = time.perf_counter()
        for source in sources:
            source.prepare("cpu")
        measured = time.perf_counter() - start
        again = make_plan(config, timing_images=a.timing_images[0], device="cpu").cache_build_seconds
        estimates.append((f"plan, --timing-images {a.timing_images[0]} (again, after the build)", again))
    print(f"config {a.config}: {plan.images:,} images in the cache, {', '.join(r.name for r in plan.representations if r.source == 'cache')}")
    print(f"| | cache build (s) | estimate / measured |\n|---|---:|---:|\n| measured (the real build) | {measured:.1f} | 1.00 |")
    for label, seconds in estimates:
        print(f"| {label} | {seconds:.1f} | {seconds / measured:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
