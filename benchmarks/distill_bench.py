"""Distillation costs and teacher sanity, side by side in one run, on the CPU.

(a) The EfficientNet-Lite0 teacher on N real Imagenette val images (``../shared/data``): its
    embedding throughput at 96 and 224 px, and the ImageNet top-1 of its own classifier (over the
    1000 classes; the 10 Imagenette classes are ImageNet classes) with the two input
    normalisations, ``(x - 0.5) / 0.5`` (what the TF model was trained with) and the ImageNet
    mean/std.
(b) One MV-MR distillation step (student: torchvision ResNet-18 with a 3x3 stem, B=32, 96 px,
    forward of both views, ``MVMRLoss(z, z_aug, {"teacher": t})``, backward, Adam step) with the
    teacher run at every step, against reading its features from a FeatureCache built once.

    python benchmarks/distill_bench.py                    # N=256 images, 2 timed steps per row
    python benchmarks/distill_bench.py --images 64 --steps 2 --threads 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from mvmr.losses import MVMRLoss
from mvmr.representations import FeatureCache
from mvmr.representations.teachers import IMAGENET_MEAN, IMAGENET_STD, Teacher, build_teacher

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

    root = extract_to / "imagenette96"
    if not (extract_to / ".imagenette96.done").exists():
        archive = shared / "imagenette96.tar.gz"
        if not archive.exists():
            sys.exit(f"Imagenette archive not found: {archive} (pass --shared-data)")
        extract_to.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive) as tar:
            tar.extractall(extract_to, filter="data")
        (extract_to / ".imagenette96.done").touch()
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


class Student(nn.Module):
    """ResNet-18 with a 3x3 stem + a small projector, normalising its [0, 1] input itself."""

    def __init__(self, projector: str) -> None:
        super().__init__()
        try:
            from mvmr.models import Projector, build_encoder

            self.encoder, dim = build_encoder("resnet18", small_images=True)
            self.projector = Projector(projector, dim)
        except ImportError:  # mvmr.models not available: the same network inline
            import torchvision

            net = torchvision.models.resnet18()
            net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
            net.fc = nn.Identity()
            self.encoder = net
            self.projector = nn.Linear(512, 512)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.projector(self.encoder((x - self.mean) / self.std))


def step_rows(images: torch.Tensor, *, batch: int, steps: int, projector: str, workdir: Path) -> tuple[list[list[str]], str]:
    torch.manual_seed(0)
    student = Student(projector)
    student.train()
    optimizer = torch.optim.Adam(student.parameters(), lr=1e-4)
    loss_fn = MVMRLoss()
    n = (len(images) // batch) * batch
    clean = images[:n]
    aug = torch.flip(clean, dims=[3]).roll(shifts=4, dims=2)  # stand-in augmentation, identical for all rows

    teachers = {
        "teacher live, 224 px": build_teacher("efficientnet-lite0"),
        "teacher live, 96 px": build_teacher("efficientnet-lite0", input_size=96),
    }
    t0 = time.perf_counter()
    cache = FeatureCache.build(
        workdir / "cache", dataset=[(img, -1) for img in clean], representations=[teachers["teacher live, 224 px"]],
        image_size=int(clean.shape[-1]), batch_size=batch, progress=False,
    )
    build_seconds = time.perf_counter() - t0

    def run(source: str, start: int) -> float:
        idx = torch.arange(start, start + batch) % n
        x, x_aug = clean[idx], aug[idx]
        t = time.perf_counter()
        if source == "cached":
            feats = cache.get(idx)["teacher"]
        else:
            feats = teachers[source](x)
        z, z_aug = student(x), student(x_aug)
        loss, _ = loss_fn(z, z_aug, {"teacher": feats})
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return time.perf_counter() - t

    sources = ["teacher live, 224 px", "teacher live, 96 px", "cached"]
    times: dict[str, list[float]] = {s: [] for s in sources}
    run("cached", 0)  # warm-up of the student
    for s in sources[:2]:
        teachers[s](clean[:batch])  # warm-up of the teachers
    for k in range(steps):  # interleaved, so that load changes hit every row alike
        for s in sources:
            times[s].append(run(s, (k + 1) * batch))
    teacher_only = {}
    for s in sources[:2]:
        x = clean[:batch]
        teachers[s](x)
        t = time.perf_counter()
        for _ in range(steps):
            teachers[s](x)
        teacher_only[s] = (time.perf_counter() - t) / steps
    t = time.perf_counter()
    for _ in range(steps):
        cache.get(torch.arange(batch))
    teacher_only["cached"] = (time.perf_counter() - t) / steps
    base = min(times["cached"])
    rows = []
    for s in sources:
        best = min(times[s])
        rows.append([s, f"{best:.2f}", f"{1000 * teacher_only[s]:.0f}", f"{best / base:.2f}x"])
    note = f"cache build ({n} images, teacher at 224 px, once per dataset): {build_seconds:.1f} s"
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
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--shared-data", type=Path, default=Path(os.environ.get("MVMR_SHARED_DATA", REPO.parent / "shared" / "data")))
    parser.add_argument("--extract-to", type=Path, default=Path(os.environ.get("MVMR_TEST_DATA", REPO / ".test-data")))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    images, labels = imagenette_val(args.shared_data, args.extract_to, args.images)
    print(f"# distill_bench: CPU ({platform.processor() or platform.machine()}), {args.threads} threads, torch {torch.__version__}\n")
    print(f"## (a) EfficientNet-Lite0 teacher on {len(images)} Imagenette val images (96x96 JPEG, resized by the teacher)\n")
    header = ["teacher input", f"embed images/s (B={args.batch}, best of 3)", "top-1 % (x-0.5)/0.5", "top-1 % ImageNet mean/std"]
    print(table(header, teacher_rows(images, labels, args.batch, repeats=3)))
    print("\n(ImageNet top-1 of the teacher's classifier over all 1000 classes, chance 0.1%; bicubic resize, centre crop 0.875.)\n")
    steps_images = images[: max(args.batch * (args.steps + 1), args.batch)]
    with tempfile.TemporaryDirectory() as tmp:
        rows, note = step_rows(steps_images, batch=args.batch, steps=args.steps, projector=args.projector, workdir=Path(tmp))
    print(f"## (b) MV-MR distillation step, student ResNet-18 (3x3 stem) + projector {args.projector}, B={args.batch}, 96 px\n")
    print(table(["teacher features", f"step time (s, best of {args.steps})", "teacher part (ms/step)", "vs cached"], rows))
    print(f"\n{note}")


if __name__ == "__main__":
    main()
