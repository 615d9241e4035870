"""Running one ablation row: pretrain (or reuse, or skip), then probe its encoder.

:class:`ProbeSettings` is the evaluation every row gets (the same labelled data and probes);
:func:`run_row` pretrains the row's config (resuming an interrupted run), evaluates the trained
encoder with :func:`mvmr.evaluation.evaluate_frozen` (linear probe and k-NN on features extracted
once) and writes ``<run>/result.json`` (:func:`save_row_result`) with the metrics, wall times,
probe settings and full config. A row whose result exists is skipped; one already run elsewhere
with the same config (run folder aside) and the same probe settings is copied (:func:`find_reusable`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from mvmr.config import from_dict, to_dict
from mvmr.data import build_dataset, random_subset
from mvmr.evaluation.encoders import resolve_encoder
from mvmr.evaluation.frozen import evaluate_frozen
from mvmr.evaluation.knn import KNNConfig
from mvmr.evaluation.linear import LinearConfig
from mvmr.evaluation.results import save_result
from mvmr.methods import available_methods
from mvmr.training import trainer  # trainer.pretrain looked up at call time (tests replace it)
from mvmr.training.export import last_checkpoint
from mvmr.utils.atomic import atomic_write_json
from mvmr.utils.provenance import peak_rss_mib, provenance

__all__ = [
    "ProbeSettings",
    "probe_datasets",
    "RESULT_FILE",
    "load_row_result",
    "save_row_result",
    "find_reusable",
    "run_row",
    "peak_rss_mib",
]

#: The result of a row, inside its run folder.
RESULT_FILE = "result.json"
#: Pretraining seconds of a row summed over its sessions (an interrupted and resumed row has several).
PRETRAIN_TIME_FILE = "pretrain_time.json"
#: Seconds between two writes of a running session's time so far to PRETRAIN_TIME_FILE: a process
#: killed outright (SIGKILL, out of memory, a lost machine) runs no ``finally`` and loses at most this.
TIME_FLUSH_S = 60.0


@dataclass
class ProbeSettings:
    """Evaluation data and protocol, identical for every row (stored with each row's result)."""

    kind: str | None = None  # dataset kind; None = the pretraining config's
    root: str | None = None  # dataset root; None = the pretraining config's
    train_split: str = "train"
    test_split: str = "test"
    train_size: int | None = None  # fixed (seed 0) random subset of the probe's training split
    test_size: int | None = None
    image_size: int | None = None  # None = the pretraining config's
    epochs: int = 100  # paper: 100 epochs, Adam, lr 1e-4, batch 256
    lr: float = 1e-4
    batch_size: int = 256
    val_fraction: float = 0.1
    knn_k: int = 20
    seed: int = 0
    device: str = "auto"

    def linear_config(self) -> LinearConfig:
        """The linear probe (epoch chosen on a ``val_fraction`` hold-out of the training split)."""
        return LinearConfig(
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            val_fraction=self.val_fraction,
            seed=self.seed,
            device=self.device,
            progress=False,
        )

    def knn_config(self) -> KNNConfig:
        """Weighted k-NN with ``knn_k`` neighbours."""
        return KNNConfig(k=self.knn_k, device=self.device, progress=False)


def probe_datasets(probe: ProbeSettings, config: Any = None) -> tuple[Dataset, Dataset]:
    """The labelled (train, test) datasets of the probe (fixed random subsets when sizes are given).

    What the probe leaves as None comes from the pretraining ``config``.
    """
    kind = probe.kind or config.data.kind
    root = probe.root if probe.root is not None else config.data.root
    size = probe.image_size or config.data.image_size
    channels = config.data.channels if config is not None else 3
    train = build_dataset(kind, root, split=probe.train_split, size=size, channels=channels)
    test = build_dataset(kind, root, split=probe.test_split, size=size, channels=channels)
    return random_subset(train, probe.train_size, probe.seed), random_subset(test, probe.test_size, probe.seed + 1)


def load_row_result(run_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """A finished row's result (``<run>/result.json``), or None."""
    path = Path(run_dir) / RESULT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def save_row_result(run_dir: str | os.PathLike[str], result: Mapping[str, Any]) -> Path:
    """Write ``<run>/result.json`` atomically (a row is finished once this file exists)."""
    return atomic_write_json(Path(run_dir) / RESULT_FILE, dict(result))


def _normalised(res: Mapping[str, Any], cls: type) -> dict[str, Any] | None:
    """A stored result's config with today's defaults and without its run folder; None if it no longer parses.

    Results written before the config had a ``method`` key name a peer method beside the config
    (``pretrain_method: peer:<name>``, or ``method: <name>``); that name wins over the config's.
    """
    stored = dict(res.get("config") or {})
    legacy = str(res.get("pretrain_method") or "")
    if legacy.startswith("peer:") or (res.get("method") != "mvmr" and res.get("method") in available_methods()):
        stored["method"] = legacy.removeprefix("peer:") if legacy.startswith("peer:") else res["method"]
    try:
        return {k: v for k, v in to_dict(from_dict(stored, cls)).items() if k != "output_dir"}
    except (ValueError, TypeError, KeyError):
        return None


def find_reusable(
    config: Any, probe: ProbeSettings, dirs: Iterable[str | os.PathLike[str]]
) -> tuple[Path, dict[str, Any]] | None:
    """A finished row (``<dir>/*/result.json``) with exactly this config (run folder aside; the
    method included) and these probe settings."""
    want_cfg = {k: v for k, v in to_dict(config).items() if k != "output_dir"}
    for d in dirs:
        for path in sorted(Path(d).glob(f"*/{RESULT_FILE}")):
            try:
                res = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if res.get("probe") == asdict(probe) and _normalised(res, type(config)) == want_cfg:
                return path.parent, res
    return None


def _timed_pretrain(config: Any, run_dir: Path, trainer_overrides: dict[str, Any]) -> tuple[float, int]:
    """Pretrain (resuming) and return (seconds over all sessions, number of sessions).

    Each session's time is added to ``<run>/pretrain_time.json`` when it ends, by an exception too
    (a preemption signal raises ``SystemExit``), and every :data:`TIME_FLUSH_S` seconds while it
    runs, so a row resumed after an interruption, even a hard kill, reports its whole pretraining
    time, not only its last session's.
    """
    path = run_dir / PRETRAIN_TIME_FILE
    before = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"seconds": 0.0, "sessions": 0}
    t0 = time.perf_counter()

    def spent() -> dict[str, Any]:
        return {"seconds": float(before["seconds"]) + time.perf_counter() - t0, "sessions": int(before["sessions"]) + 1}

    stop = threading.Event()

    def flush() -> None:
        while not stop.wait(TIME_FLUSH_S):
            atomic_write_json(path, spent())

    flusher = threading.Thread(target=flush, name="mvmr-pretrain-time", daemon=True)
    flusher.start()
    try:
        trainer.pretrain(config, resume="auto", trainer_overrides=trainer_overrides)
    finally:
        stop.set()
        flusher.join()
        total = spent()
        atomic_write_json(path, total)
    return total["seconds"], total["sessions"]


def run_row(
    config: Any,
    probe: ProbeSettings,
    *,
    key: str = "",
    extra: Mapping[str, Any] | None = None,
    trainer_overrides: Mapping[str, Any] | None = None,
    reuse: Sequence[str | os.PathLike[str]] = (),
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Pretrain ``config`` (resuming an interrupted run) and evaluate it; skipped when finished.

    ``pretrain_s`` in the result sums every session of an interrupted and resumed row
    (``pretrain_sessions`` says how many there were); ``peak_rss_mib`` is the last session's.

    The config's ``method`` says what trains (MV-MR or a peer method from the registry).
    ``reuse``: folders of other ablations/benchmarks; a finished row there with the identical
    config (run folder aside) and probe settings is copied instead of run again.
    The result (metrics, wall times, peak memory of this process, and where and with what code the row ran:
    ``machine``, ``commit``, ``mvmr``, ``torch``, ``recorded``, taken when this session starts, before ``extra``)
    goes to ``<run>/result.json``.
    """
    run_dir = Path(config.output_dir)
    done = load_row_result(run_dir)
    if done is not None:
        log(f"[skip] {key or run_dir}: {run_dir / RESULT_FILE} exists")
        return done
    found = find_reusable(config, probe, reuse) if reuse else None
    if found is not None:
        src, res = found
        res = {**res, "key": key or res.get("key"), "reused_from": str(src)}
        save_row_result(run_dir, res)
        log(f"[reuse] {key or run_dir}: identical config and probe in {src}")
        return res
    log(f"[run] {key or run_dir} -> {run_dir}")
    ran_on = provenance()  # the code that trains this row, before any of it runs
    pretrain_s, sessions = _timed_pretrain(config, run_dir, dict(trainer_overrides or {}))
    t1 = time.perf_counter()
    train_ds, test_ds = probe_datasets(probe, config)
    evaluation = evaluate_frozen(
        resolve_encoder(checkpoint=last_checkpoint(run_dir)),
        train_ds,
        test_ds,
        linear=probe.linear_config(),
        knn=probe.knn_config(),
        encoder=f"checkpoint:{run_dir}",
        dataset=f"{probe.kind or config.data.kind}:{probe.root or config.data.root}",
    )
    for protocol_result in evaluation.results:
        save_result(run_dir, protocol_result)
    metrics = evaluation.summary()
    t2 = time.perf_counter()
    wall_s = pretrain_s + t2 - t1  # every session's pretraining, then this session's evaluation
    result = {
        "key": key,
        **metrics,
        "pretrain_s": round(pretrain_s, 1),
        "pretrain_sessions": sessions,
        "eval_s": round(t2 - t1, 1),
        "wall_s": round(wall_s, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "seed": config.trainer.seed,
        "epochs": config.trainer.max_epochs,
        "pretrain_method": config.method,
        "probe": asdict(probe),
        "config": to_dict(config),
        **ran_on,
        **dict(extra or {}),
    }
    save_row_result(run_dir, result)
    log(f"[done] {key}: linear top-1 {metrics['linear_top1']:.2f}, k-NN {metrics['knn_top1']:.2f}, {wall_s:.0f} s")
    return result
