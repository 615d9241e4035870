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

    python benchmarks/distill_bench.py                    # N=256 images, 2 timed steps per row, 2 rounds
    python benchmarks/distill_bench.py --images 64 --steps 2 --threads 1 --small-images
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from mvmr.representations.teachers import Teacher, build_teacher
from mvmr.transforms.normalization import IMAGENET_MEAN, IMAGENET_STD

from _data import SHARED_DATA, TEST_DATA, extract_once

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


def teacher_rows(images: torch.Tensor, labels: torch.Tensor, batch: int, repeats: int) -> list[list[str]]:
    """Per input size: embedding throughput (best of ``repeats`` on one batch) and top-1 with both normalisations."""
    rows = []
    x = images[:batch]
    for size in (96, 224):
        row = [f"{size} px"]
        accuracies = []
        for kw in ({}, {"mean": IMAGENET_MEAN, "std": IMAGENET_STD}):
            teacher = build_teacher("efficientnet-lite0", input_size=size, **kw)
            assert isinstance(teacher, Teacher)
            if not kw:
                teacher(x)  # warm-up
                best = min(_seconds(lambda: teacher(x)) for _ in range(repeats))
                row.append(f"{len(x) / best:.1f}")
            logits = torch.cat([teacher.logits(images[i : i + batch]) for i in range(0, len(images), batch)])
            accuracies.append(f"{100 * (logits.argmax(1) == labels).float().mean().item():.1f}")
        rows.append(row + accuracies)
    return rows


def _seconds(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def step_rows(root: Path, *, batch: int, steps: int, rounds: int, encoder: str, small_images: bool, projector: str,
              image_size: int, workdir: Path) -> tuple[list[list[str]], str]:
    """One distillation step through the real trainer path (``mvmr.workflows.distill_report.time_teacher_steps``:
    the PretrainingModule and Lightning trainer of ``mvmr distill``), teacher cached vs run every step."""
    from mvmr.config import load_config
    from mvmr.workflows.distill_report import time_teacher_steps

    n = batch * (steps + 1)
    common = [
        "data.kind=imagefolder", f"data.root={root}", "data.split=val", f"data.image_size={image_size}",
        f"data.subset={n}", f"data.batch_size={batch}", "data.num_workers=0", "data.val_fraction=0.0",
        "representations.items=[]", f"model.encoder={encoder}", f"model.small_images={str(small_images).lower()}",
        f"model.projector={projector}", "probe.enabled=false", "trainer.accelerator=cpu", "trainer.devices=1",
        "trainer.max_epochs=1", "teacher.spec=efficientnet-lite0", f"output_dir={workdir / 'run'}",
        f"teacher.batch_size={batch}",
    ]
    variants = [
        ("cached (read by index), teacher 224 px", "cached", 224),
        ("teacher run every step, 224 px", "live", 224),
        ("teacher run every step, 96 px", "live", 96),
        ("4 stored augmented views (read by view), teacher 96 px", "stored", 96),
        ("teacher run every step on the augmented view, 96 px", "live_augmented", 96),
    ]
    medians: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    build = None
    for _ in range(rounds):  # the variants take turns, so that a change of machine load hits each alike
        for label, mode, size in variants:
            stored = ["teacher.view=augmented", "teacher.cached_views=4"] if mode == "stored" else []
            folder = workdir / ("teacher-views" if mode == "stored" else "teacher-cache") / str(size)
            config = load_config(None, [*common, f"teacher.options={{input_size: {size}}}", *stored,
                                        f"teacher.cache_dir={folder}"])
            result = time_teacher_steps(config, mode=mode, steps=steps)
            medians[label].append(result["seconds"])
            build = build if build is not None or mode != "cached" else result["cache_build_seconds"]
    best = {label: min(values) for label, values in medians.items()}
    base = best[variants[0][0]]
    rows = [[label, f"{t:.2f}", f"{batch / t:.1f}", f"{t / base:.2f}x"] for label, t in best.items()]
    note = f"cache build ({n} images, teacher at 224 px, once per dataset, not in the step times): {build:.1f} s"
    return rows, note


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=256, help="Imagenette val images for (a) (default 256)")
    parser.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    parser.add_argument("--steps", type=int, default=2, help="timed distillation steps per row (default 2)")
    parser.add_argument("--projector", default="2048-2048", help="student projector spec (default 2048-2048)")
    parser.add_argument("--encoder", default="resnet18", help="student encoder (default resnet18)")
    parser.add_argument("--small-images", action=argparse.BooleanOptionalAction, default=False,
                        help="student with the 3x3 CIFAR stem (default: the 7x7 ImageNet stem, ~9x cheaper at 96 px)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds over the three variants; best median kept (default 2)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA)
    parser.add_argument("--extract-to", type=Path, default=TEST_DATA)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images, labels = imagenette_val(args.shared_data, args.extract_to, args.images)
    print(f"# distill_bench: CPU ({platform.processor() or platform.machine()}), {args.threads} threads, torch {torch.__version__}\n")
    print(f"## (a) EfficientNet-Lite0 teacher on {len(images)} Imagenette val images (96x96 JPEG, resized by the teacher)\n")
    header = ["teacher input", f"embed images/s (B={args.batch}, best of 3)", "top-1 % (x-0.5)/0.5", "top-1 % ImageNet mean/std"]
    print(table(header, teacher_rows(images, labels, args.batch, repeats=3)))
    print("\n(ImageNet top-1 of the teacher's classifier over all 1000 classes, chance 0.1%; bicubic resize, centre crop 0.875.)\n")
    with tempfile.TemporaryDirectory() as tmp:
        rows, note = step_rows(args.extract_to / "imagenette96", batch=args.batch, steps=args.steps, rounds=args.rounds,
                               encoder=args.encoder,
                               small_images=args.small_images, projector=args.projector, image_size=96, workdir=Path(tmp))
    stem = "3x3 stem" if args.small_images else "7x7 stem"
    print(f"## (b) MV-MR distillation step via the trainer of `mvmr distill`, student {args.encoder} ({stem}) + "
          f"projector {args.projector}, B={args.batch}, 96 px\n")
    header = ["teacher features", f"step time (s; median of {args.steps} steps, best of {args.rounds} rounds)", "images/s", "vs cached"]
    print(table(header, rows))
    print(f"\n{note}")


if __name__ == "__main__":
    main()
