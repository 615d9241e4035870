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

``--records FILE`` writes one JSON record per row (the real build, with each cached source's seconds, and each
estimate, with the plan's seconds per image of each representation), each with the settings, the command line,
threads and provenance; :func:`table` renders the table from those records alone.

    python benchmarks/plan_cache_estimate.py                         # the demo config: 5,000 Fashion-MNIST images
    python benchmarks/plan_cache_estimate.py --config cifar10 data.root=.test-data/cifar10 data.kind=imagefolder
    python benchmarks/plan_cache_estimate.py --timing-images 4 32 --records docs/results/bench-plan-cache.json
"""

from __future__ import annotations

import argparse
import inspect
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _provenance import command, provenance, write_records  # noqa: E402


def _label(record: dict[str, Any]) -> str:
    """An estimate's row: its ``--timing-images``, marked where it is the plan's default or the repeat."""
    label = f"plan, --timing-images {record['timing_images']}"
    if record["again"]:
        return label + " (again, after the build)"
    return label + (" (the new default)" if record["timing_images"] == record["plan_default"] else "")


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md's cache-estimate section from ``records`` alone: the real build's
    seconds, then each estimate's seconds and its ratio to the real build."""
    measured = sum(next(r for r in records if r["kind"] == "measured")["source_seconds"])
    lines = [
        "| | cache build (s) | estimate / measured |",
        "|---|---:|---:|",
        f"| measured (the real build) | {measured:.1f} | 1.00 |",
    ]
    for r in records:
        if r["kind"] == "estimate":
            lines.append(f"| {_label(r)} | {r['seconds']:.1f} | {r['seconds'] / measured:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    import torch

    from mvmr.config import load_config
    from mvmr.training.build import build_data, build_sources
    from mvmr.workflows.plan import Plan, make_plan

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="demo")
    p.add_argument("--timing-images", type=int, nargs="+", default=[4, 32])
    p.add_argument("--records", type=Path, default=None, metavar="FILE", help="write every row's record to this JSON")
    p.add_argument("overrides", nargs="*", help="config overrides, key=value")
    a = p.parse_args(argv)
    plan_default = inspect.signature(make_plan).parameters["timing_images"].default

    def estimate(plan: Plan, n: int, again: bool) -> dict[str, Any]:
        per_image = {r.name: r.seconds_per_image for r in plan.representations if r.source == "cache"}
        return {
            "kind": "estimate",
            "timing_images": n,
            "again": again,
            "plan_default": plan_default,
            "seconds": plan.cache_build_seconds,
            "seconds_per_image": per_image,
        }

    with tempfile.TemporaryDirectory() as tmp:
        config = load_config(
            a.config,
            [
                *a.overrides,
                f"representations.cache_dir={tmp}/cache",
                f"output_dir={tmp}/run",
                "trainer.progress_bar=false",
            ],
        )
        records = []
        for n in a.timing_images:
            plan = make_plan(config, timing_images=n, device="cpu")
            records.append(estimate(plan, n, again=False))
        data = build_data(config)
        sources = [s for s in build_sources(config, data.base).all if type(s).__name__ == "CachedSource"]
        source_seconds = []
        for source in sources:
            start = time.perf_counter()
            source.prepare("cpu")
            source_seconds.append(time.perf_counter() - start)
        records.insert(0, {"kind": "measured", "source_seconds": source_seconds})
        records.append(
            estimate(make_plan(config, timing_images=a.timing_images[0], device="cpu"), a.timing_images[0], again=True)
        )
    cached = [r.name for r in plan.representations if r.source == "cache"]
    settings = {"config": a.config, "overrides": list(a.overrides), "images": plan.images, "cached": cached}
    common = {"command": command(argv, __file__), "threads": torch.get_num_threads(), **provenance()}
    records = [{**r, **settings, **common} for r in records]
    if a.records is not None:
        write_records(a.records, records)
    print(f"config {a.config}: {plan.images:,} images in the cache, {', '.join(cached)}")
    print(table(records), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
