"""Running one ablation row: pretrain (or reuse, or skip), then probe its encoder.

:func:`run_row` pretrains the row's config (resuming an interrupted run), evaluates the trained
encoder with :func:`mvmr.evaluation.evaluate_frozen` (linear probe and k-NN on features extracted
once) and writes ``<run>/result.json`` with the metrics, wall times and peak memory. A row whose
result exists is skipped; one already run elsewhere with the same config and probe is copied.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from mvmr.config import to_dict
from mvmr.evaluation.encoders import resolve_encoder
from mvmr.evaluation.frozen import evaluate_frozen
from mvmr.evaluation.results import save_result
from mvmr.training import trainer  # trainer.pretrain looked up at call time (tests replace it)
from mvmr.training.export import last_checkpoint
from mvmr.workflows.ablation.probe import ProbeSettings, probe_datasets
from mvmr.workflows.ablation.reuse import RESULT_FILE, find_reusable, load_row_result, save_row_result

__all__ = ["run_row", "peak_rss_mib"]


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB; ``ru_maxrss`` is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def run_row(config: Any, probe: ProbeSettings, *, key: str = "", extra: Mapping[str, Any] | None = None,
            trainer_overrides: Mapping[str, Any] | None = None,
            reuse: Sequence[str | os.PathLike[str]] = (), log: Callable[[str], None] = print) -> dict[str, Any]:
    """Pretrain ``config`` (resuming an interrupted run) and evaluate it; skipped when finished.

    The config's ``method`` says what trains (MV-MR or a peer method from the registry).
    ``reuse``: folders of other ablations/benchmarks; a finished row there with the identical
    config (run folder aside) and probe settings is copied instead of run again.
    The result (metrics, wall times, peak memory of this process) goes to ``<run>/result.json``.
    """
    run_dir = Path(config.output_dir)
    done = load_row_result(run_dir)
    if done is not None:
        log(f"[skip] {key or run_dir}: {run_dir / RESULT_FILE} exists")
        return done
    if reuse:
        found = find_reusable(config, probe, reuse)
        if found is not None:
            src, res = found
            res = {**res, "key": key or res.get("key"), "reused_from": str(src)}
            save_row_result(run_dir, res)
            log(f"[reuse] {key or run_dir}: identical config and probe in {src}")
            return res

    log(f"[run] {key or run_dir} -> {run_dir}")
    t0 = time.perf_counter()
    trainer.pretrain(config, resume="auto", trainer_overrides=dict(trainer_overrides or {}))
    t1 = time.perf_counter()
    train_ds, test_ds = probe_datasets(probe, config)
    evaluation = evaluate_frozen(resolve_encoder(checkpoint=last_checkpoint(run_dir)), train_ds, test_ds, linear=probe.linear_config(),
                                 knn=probe.knn_config(), encoder=f"checkpoint:{run_dir}",
                                 dataset=f"{probe.kind or config.data.kind}:{probe.root or config.data.root}")
    for protocol_result in evaluation.results:
        save_result(run_dir, protocol_result)
    metrics = evaluation.summary()
    t2 = time.perf_counter()
    result = {
        "key": key,
        **metrics,
        "pretrain_s": round(t1 - t0, 1),
        "eval_s": round(t2 - t1, 1),
        "wall_s": round(t2 - t0, 1),
        "peak_rss_mib": round(peak_rss_mib(), 1),
        "seed": config.trainer.seed,
        "epochs": config.trainer.max_epochs,
        "pretrain_method": config.method,
        "probe": asdict(probe),
        "config": to_dict(config),
        **dict(extra or {}),
    }
    save_row_result(run_dir, result)
    log(f"[done] {key}: linear top-1 {metrics['linear_top1']:.2f}, k-NN {metrics['knn_top1']:.2f}, {t2 - t0:.0f} s")
    return result
