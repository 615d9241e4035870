"""Choose the demo's settings on a validation split of Fashion-MNIST's TRAINING set.

The test set is never read. The script writes a copy of Fashion-MNIST in which 10,000 training
images (a fixed, seeded draw) take the place of the test files, and the other 50,000 are the
training files. ``mvmr demo`` then runs unchanged on that copy: it pretrains on a subset of the
50,000 and reports its linear probe on the 10,000 held-out training images.

Each candidate is a name and a list of config overrides; its result (the three rows, the gain
over the best baseline and the wall times) goes to ``<out>/<name>/demo_results.json``, and the
summary table to ``<out>/tuning.md``. Candidates that already have a result are skipped.

    python benchmarks/demo_tuning.py --out runs/demo-tuning                # the candidates below
    python benchmarks/demo_tuning.py --out runs/demo-tuning --only base    # one of them
    python benchmarks/demo_tuning.py --out runs/demo-tuning --name x trainer.max_epochs=8 ...
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}

#: name -> overrides of configs/demo.yaml (applied on top of the shipped demo config)
CANDIDATES: dict[str, list[str]] = {
    "base": [],
}


def read_idx(path: Path) -> tuple[bytes, np.ndarray]:
    """(header bytes, data) of a gzipped idx file."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    header = raw[: 4 + 4 * ndim]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return header, np.frombuffer(raw[len(header):], dtype=np.uint8).reshape(shape)


def write_idx(path: Path, data: np.ndarray) -> None:
    header = bytes([0, 0, 8, data.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in data.shape)
    path.write_bytes(gzip.compress(header + np.ascontiguousarray(data).tobytes(), compresslevel=1))


def validation_copy(source: Path, out: Path, *, val_size: int = 10_000, seed: int = 0) -> Path:
    """Fashion-MNIST with ``val_size`` training images in place of the test files."""
    marker = out / ".done"
    if marker.is_file():
        return out
    out.mkdir(parents=True, exist_ok=True)
    _, images = read_idx(source / FILES["train"][0])
    _, labels = read_idx(source / FILES["train"][1])
    order = np.random.default_rng(seed).permutation(len(labels))
    val, train = np.sort(order[:val_size]), np.sort(order[val_size:])
    write_idx(out / FILES["train"][0], images[train])
    write_idx(out / FILES["train"][1], labels[train])
    write_idx(out / FILES["test"][0], images[val])
    write_idx(out / FILES["test"][1], labels[val])
    marker.write_text(json.dumps({"source": "fashion-mnist train", "val_size": val_size, "seed": seed}))
    return out


def summarise(out: Path) -> str:
    lines = ["| candidate | MV-MR | untrained | pixels | gain over best baseline | pretrain (min) | total (min) | overrides |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for folder in sorted(p for p in out.iterdir() if (p / "demo_results.json").is_file()):
        r = json.loads((folder / "demo_results.json").read_text())
        acc = [100 * row["accuracy"] for row in r["rows"]]
        ov = json.loads((folder / "overrides.json").read_text()) if (folder / "overrides.json").is_file() else []
        lines.append(f"| {folder.name} | {acc[0]:.1f} | {acc[1]:.1f} | {acc[2]:.1f} | {acc[0] - max(acc[1:]):+.1f} | "
                     f"{r['pretrain_seconds'] / 60:.1f} | {r['total_seconds'] / 60:.1f} | {' '.join(ov)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--source", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST idx files")
    p.add_argument("--out", default="runs/demo-tuning")
    p.add_argument("--only", nargs="*", default=None, help="run only these candidates")
    p.add_argument("--name", default=None, help="run one ad-hoc candidate with the overrides given after the options")
    p.add_argument("--probe-train", type=int, default=None, help="probe training images (default: the demo's)")
    p.add_argument("--probe-test", type=int, default=None, help="held-out images scored (default: the demo's)")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args(argv)

    try:
        from mvmr.workflows.demo import run_demo
    except ImportError:  # before the workflows layer existed
        from mvmr.workflows.demo import run_demo

    out = Path(args.out)
    data = validation_copy(Path(args.source), out / "fashion-mnist-val")
    todo = {args.name: list(args.overrides)} if args.name else {
        k: v for k, v in CANDIDATES.items() if args.only is None or k in args.only}
    kwargs = {k: v for k, v in (("probe_train", args.probe_train), ("probe_test", args.probe_test)) if v is not None}
    for name, overrides in todo.items():
        run_dir = out / name
        if (run_dir / "demo_results.json").is_file():
            print(f"[skip] {name}", flush=True)
            continue
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "overrides.json").write_text(json.dumps(overrides))
        print(f"[run] {name}: {' '.join(overrides)}", flush=True)
        start = time.perf_counter()
        run_demo(data=data, out=run_dir, overrides=overrides, **kwargs)
        print(f"[done] {name} in {(time.perf_counter() - start) / 60:.1f} min", flush=True)
    table = summarise(out)
    (out / "tuning.md").write_text(table, encoding="utf-8")
    print(table, end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
