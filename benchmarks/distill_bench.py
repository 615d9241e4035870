"""Distillation costs and teacher sanity, side by side in one run, on the CPU.

(a) The EfficientNet-Lite0 teacher on N real Imagenette val images (``../shared/data``): its
    embedding throughput at 96 and 224 px, and the ImageNet top-1 of its own classifier (over the
    1000 classes; the 10 Imagenette classes are ImageNet classes) with the two input
    normalisations, ``(x - 0.5) / 0.5`` (what the TF model was trained with) and the ImageNet
    mean/std.
(b) One MV-MR distillation step through the real trainer path of ``mvmr distill``
    (``time_teacher_steps``; student: ResNet-18, 7x7 stem unless --small-images, B=32, 96 px;
    forward of both views, ``MVMRLoss``, backward, Adam step, timed from batch start to batch end
    by a Lightning callback) with the teacher's embeddings read from its FeatureCache (built once,
    before training) against the teacher run at every step (224 px and 96 px input), and, for a
    teacher of the augmented view, 4 stored views read by view (their cache built once) against the
    teacher run on every augmented view. The variants take turns for ``--rounds`` rounds; each keeps
    its best median.

``--records FILE`` writes one JSON record per row of (a) and (b) (its settings, every timed call or step of
every round, the command line, threads and provenance); :func:`table` renders docs/benchmarks.md's table of (b)
and :func:`teacher_table` the table of (a) from those records alone.

    python benchmarks/distill_bench.py                    # N=256 images, 2 timed steps per row, 2 rounds
    python benchmarks/distill_bench.py --images 64 --steps 2 --threads 1 --small-images
    python benchmarks/distill_bench.py --threads 1 --records docs/results/bench-distill.json
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mvmr.representations.teachers import Teacher, build_teacher
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _data import SHARED_DATA, TEST_DATA, extract_once  # noqa: E402
from _provenance import command, provenance, write_records  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
IMAGENETTE_TO_IMAGENET = {
    "tench": 0,
    "english_springer": 217,
    "cassette_player": 482,
    "chain_saw": 491,
    "church": 497,
    "french_horn": 566,
    "garbage_truck": 569,
    "gas_pump": 571,
    "golf_ball": 574,
    "parachute": 701,
}


def imagenette_val(shared: Path, extract_to: Path, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` val images spread over the classes (96x96, [0, 1]) and their ImageNet labels."""
    from PIL import Image

    root = extract_once(shared / "imagenette96.tar.gz", "imagenette96", extract_to, hint="pass --shared-data")
    paths = sorted((root / "val").rglob("*.jpg"))
    paths = paths[:: max(1, len(paths) // n)][:n]
    images = [
        torch.from_numpy(np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1)
        for p in paths
    ]
    labels = torch.tensor([IMAGENETTE_TO_IMAGENET[p.parent.name] for p in paths])
    return torch.stack(images), labels


def teacher_rows(images: torch.Tensor, labels: torch.Tensor, batch: int, repeats: int) -> list[dict[str, Any]]:
    """Per input size, one record: the embedding time of one batch (every one of ``repeats`` calls) and the
    top-1 (%) of the teacher's classifier with both normalisations."""
    rows = []
    x = images[:batch]
    norms: tuple[tuple[str, dict[str, Any]], ...] = (
        ("half", {}),
        ("imagenet", {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}),
    )
    for size in (96, 224):
        row: dict[str, Any] = {"kind": "teacher", "input_size": size, "batch": len(x), "images": len(images)}
        for norm, kw in norms:
            teacher = build_teacher("efficientnet-lite0", input_size=size, **kw)
            assert isinstance(teacher, Teacher)
            if not kw:
                teacher(x)  # warm-up
                row["embed_seconds"] = [_seconds(partial(teacher, x)) for _ in range(repeats)]
            logits = torch.cat([teacher.logits(images[i : i + batch]) for i in range(0, len(images), batch)])
            row[f"top1_{norm}"] = 100 * (logits.argmax(1) == labels).float().mean().item()
        rows.append(row)
    return rows


def teacher_table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of (a) from ``records`` alone: embedding throughput of the best call, and top-1 with
    both normalisations, per teacher input size."""
    rows = [r for r in records if r["kind"] == "teacher"]
    header = [
        "teacher input",
        f"embed images/s (B={rows[0]['batch']}, best of {len(rows[0]['embed_seconds'])})",
        "top-1 % (x-0.5)/0.5",
        "top-1 % ImageNet mean/std",
    ]
    body = [
        [
            f"{r['input_size']} px",
            f"{r['batch'] / min(r['embed_seconds']):.1f}",
            f"{r['top1_half']:.1f}",
            f"{r['top1_imagenet']:.1f}",
        ]
        for r in rows
    ]
    return _markdown(header, body)


def _seconds(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def step_rows(
    root: Path,
    *,
    batch: int,
    steps: int,
    rounds: int,
    encoder: str,
    small_images: bool,
    projector: str,
    image_size: int,
    workdir: Path,
) -> list[dict[str, Any]]:
    """One distillation step through the real trainer path (``mvmr.workflows.distill_report.time_teacher_steps``:
    the PretrainingModule and Lightning trainer of ``mvmr distill``), teacher cached vs run every step: one record
    per variant, with every timed step of every round."""
    from mvmr.config import load_config
    from mvmr.workflows.distill_report import time_teacher_steps

    n = batch * (steps + 1)
    common = [
        "data.kind=imagefolder",
        f"data.root={root}",
        "data.split=val",
        f"data.image_size={image_size}",
        f"data.subset={n}",
        f"data.batch_size={batch}",
        "data.num_workers=0",
        "data.val_fraction=0.0",
        "representations.items=[]",
        f"model.encoder={encoder}",
        f"model.small_images={str(small_images).lower()}",
        f"model.projector={projector}",
        "probe.enabled=false",
        "trainer.accelerator=cpu",
        "trainer.devices=1",
        "trainer.max_epochs=1",
        "teacher.spec=efficientnet-lite0",
        f"output_dir={workdir / 'run'}",
        f"teacher.batch_size={batch}",
    ]
    variants = [
        ("cached (read by index), teacher 224 px", "cached", 224),
        ("teacher run every step, 224 px", "live", 224),
        ("teacher run every step, 96 px", "live", 96),
        ("4 stored augmented views (read by view), teacher 96 px", "stored", 96),
        ("teacher run every step on the augmented view, 96 px", "live_augmented", 96),
    ]
    records: dict[str, dict[str, Any]] = {
        label: {
            "kind": "step",
            "variant": label,
            "mode": mode,
            "teacher_size": size,
            "views": 4 if mode == "stored" else 0,
            "images": n,
            "batch": batch,
            "steps": steps,
            "warmup_steps": 1,
            "encoder": encoder,
            "small_images": small_images,
            "projector": projector,
            "image_size": image_size,
            "rounds": [],
            "cache_build_seconds": [],
        }
        for label, mode, size in variants
    }
    for _ in range(rounds):  # the variants take turns, so that a change of machine load hits each alike
        for label, mode, size in variants:
            stored = ["teacher.view=augmented", "teacher.cached_views=4"] if mode == "stored" else []
            folder = workdir / ("teacher-views" if mode == "stored" else "teacher-cache") / str(size)
            config = load_config(
                None, [*common, f"teacher.options={{input_size: {size}}}", *stored, f"teacher.cache_dir={folder}"]
            )
            result = time_teacher_steps(config, mode=mode, steps=steps)
            records[label]["rounds"].append(list(result["all"]))  # every timed step of this round
            records[label]["cache_build_seconds"].append(result["cache_build_seconds"])  # None: cache existed
    return list(records.values())


def _short_label(record: dict[str, Any]) -> str:
    """A variant as docs/benchmarks.md names it: how the teacher's features are got, and at what input size."""
    size = record["teacher_size"]
    return {
        "cached": "cached",
        "live": f"every step, {size} px",
        "stored": f"{record['views']} stored augmented views, {size} px",
        "live_augmented": f"every step on the augmented view, {size} px",
    }[record["mode"]]


def _best(record: dict[str, Any]) -> float:
    """A variant's step time: the best of its rounds' medians."""
    return min(statistics.median(steps) for steps in record["rounds"])


def table(records: list[dict[str, Any]]) -> str:
    """The Markdown table of docs/benchmarks.md's distillation-step section from ``records`` alone: each variant's
    step time (the best of its rounds' median steps) and its ratio to the cached teacher's. Records of (a) are
    ignored."""
    rows = [r for r in records if r["kind"] == "step"]
    base = _best(next(r for r in rows if r["mode"] == "cached"))
    return _markdown(
        ["teacher features", "step time (s)", "vs cached"],
        [[_short_label(r), f"{_best(r):.2f}", f"{_best(r) / base:.2f}x"] for r in rows],
    )


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="Imagenette val images for (a) (default 256)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--steps", type=int, default=2, help="timed distillation steps per row (default 2)")
    parser.add_argument("--projector", default="2048-2048", help="student projector spec (default 2048-2048)")
    parser.add_argument("--encoder", default="resnet18", help="student encoder (default resnet18)")
    parser.add_argument(
        "--small-images",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="student with the 3x3 CIFAR stem (default: the 7x7 ImageNet stem, ~9x cheaper at 96 px)",
    )
    parser.add_argument(
        "--rounds", type=int, default=2, help="rounds over the three variants; best median kept (default 2)"
    )
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    parser.add_argument("--extract-to", type=Path, default=TEST_DATA)
    parser.add_argument(
        "--records", type=Path, default=None, metavar="FILE", help="write every row's record to this JSON"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images, labels = imagenette_val(args.shared_data, args.extract_to, args.images)
    print(
        f"# distill_bench: CPU ({platform.processor() or platform.machine()}), {args.threads} threads, "
        f"torch {torch.__version__}\n"
    )
    records = teacher_rows(images, labels, args.batch, repeats=3)
    print("(a) measured", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        records += step_rows(
            args.extract_to / "imagenette96",
            batch=args.batch,
            steps=args.steps,
            rounds=args.rounds,
            encoder=args.encoder,
            small_images=args.small_images,
            projector=args.projector,
            image_size=96,
            workdir=Path(tmp),
        )
    common = {"command": command(argv, __file__), "threads": torch.get_num_threads(), **provenance()}
    records = [{**r, **common} for r in records]
    if args.records is not None:
        write_records(args.records, records)
    print(
        f"## (a) EfficientNet-Lite0 teacher on {len(images)} Imagenette val images (96x96 JPEG, resized by the "
        "teacher)\n"
    )
    print(teacher_table(records))
    print(
        "(ImageNet top-1 of the teacher's classifier over all 1000 classes, chance 0.1%; bicubic resize, centre "
        "crop 0.875.)\n"
    )
    stem = "3x3 stem" if args.small_images else "7x7 stem"
    print(
        f"## (b) MV-MR distillation step via the trainer of `mvmr distill`, student {args.encoder} ({stem}) + "
        f"projector {args.projector}, B={args.batch}, 96 px; step time: median of {args.steps} steps, best of "
        f"{args.rounds} rounds\n"
    )
    print(table(records))
    steps = [r for r in records if r["kind"] == "step"]
    for r in steps:
        print(f"- {_short_label(r)}: {r['variant']} ({r['batch'] / _best(r):.1f} images/s)")
    build = next((s for r in steps if r["mode"] == "cached" for s in r["cache_build_seconds"] if s is not None), None)
    n = steps[0]["images"]
    build_s = "-" if build is None else f"{build:.1f} s"
    print(f"\ncache build ({n} images, teacher at 224 px, once per dataset, not in the step times): {build_s}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
