"""The report of a distillation run: student vs teacher vs self-supervised student vs random student.

:func:`distill_report` evaluates, on the same labelled data and with the same linear probe
(:func:`mvmr.evaluation.evaluate_frozen`: one linear layer on frozen features, the epoch chosen on
a hold-out of the training split, the test split read once):

- the distilled student (the run's ``checkpoints/last.ckpt``, encoder features);
- the teacher (its embedding is the feature vector; not for ``embeddings:`` teachers, which
  cannot embed new images);
- optionally the same student trained by MV-MR self-supervision alone with the same budget
  (``ssl_run``: a finished run folder; ``mvmr distill --compare-ssl`` trains it into
  ``<run>/ssl-baseline`` with the same config minus the teacher);
- the student's architecture randomly initialised;

with parameter counts, and times a training step with the cached teacher against the teacher
run at every step (:func:`time_teacher_steps`). Every probe result is
saved with :func:`mvmr.evaluation.save_result` (``results/linear-<row>.json``); the side-by-side
table is appended to ``results.md`` and written to ``distill_report.md`` / ``distill_report.json``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from mvmr.config import Config, validate
from mvmr.errors import CheckpointError
from mvmr.representations.teachers import Teacher, build_teacher, parse_teacher_spec
from mvmr.training.timing import time_steps

if TYPE_CHECKING:  # annotations only
    from mvmr.evaluation import FeatureExtractor

__all__ = [
    "distill_report",
    "ssl_baseline_config",
    "probe_datasets",
    "format_report",
    "time_teacher_steps",
    "teacher_modes",
]


def ssl_baseline_config(config: Config, out: str | Path) -> Config:
    """``config`` without the teacher (same student, data, optimiser, schedule and epochs), with
    ``evaluation.ssl_representations`` (default: the config's own) as the hand-crafted ones."""
    items = config.evaluation.ssl_representations
    reps = config.representations if items is None else replace(config.representations, items=list(items))
    return validate(
        replace(
            config,
            name=f"{config.name}-ssl",
            output_dir=str(out),
            representations=reps,
            teacher=replace(config.teacher, spec=None, weights=None),
        )
    )


def probe_datasets(config: Config) -> tuple[Dataset, Dataset, str]:
    """The probe's labelled ``(train, test, description)`` from ``config.data`` and ``config.evaluation``."""
    from mvmr.data import DatasetSubset, build_dataset
    from mvmr.evaluation.dataset_info import dataset_labels
    from mvmr.evaluation.subsets import stratified_limit

    d, e = config.data, config.evaluation
    train_split = e.train_split or d.split
    kwargs: dict[str, Any] = dict(
        size=d.image_size,
        download=d.download,
        channels=d.channels,
        skip_corrupt=d.skip_corrupt,
        name=d.name,
        image_column=d.image_column,
        label_column=d.label_column,
    )
    train: Dataset = build_dataset(d.kind, d.root, split=train_split, **kwargs)
    test: Dataset = build_dataset(d.kind, d.root, split=e.test_split, **kwargs)
    seed = config.trainer.seed
    if e.train_subset is not None and e.train_subset < len(train):  # type: ignore[arg-type]
        train = DatasetSubset(train, stratified_limit(dataset_labels(train), e.train_subset, seed=seed + 1))
    if e.test_subset is not None and e.test_subset < len(test):  # type: ignore[arg-type]
        test = DatasetSubset(test, stratified_limit(dataset_labels(test), e.test_subset, seed=seed + 2))
    desc = f"{d.kind}:{d.root} {train_split} ({len(train)}) / {e.test_split} ({len(test)}) at {d.image_size} px"  # type: ignore[arg-type]
    return train, test, desc


def _encoder_params(extractor: FeatureExtractor) -> int:
    """The parameters of an extractor's backbone."""
    return sum(p.numel() for p in extractor.backbone.parameters())


def distill_report(
    config: Config,
    run_dir: str | Path | None = None,
    *,
    ssl_run: str | Path | None = None,
    timing: bool = True,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Evaluate a finished distillation run side by side with its baselines (see the module doc).

    Args:
        config: the run's config (``teacher``, ``data``, ``evaluation`` sections).
        run_dir: the run folder (default ``config.output_dir``).
        ssl_run: run folder of the same student trained by self-supervision alone, or None.
        timing: also time the training step, cached teacher vs teacher every step.
        progress: progress bars of the feature extraction.

    Returns the report as a dict (also written to ``<run>/distill_report.json``).
    """
    from mvmr.evaluation import FeatureExtractor, LinearConfig, evaluate_frozen, resolve_encoder, save_result
    from mvmr.training.export import last_checkpoint

    run = Path(run_dir if run_dir is not None else config.output_dir).expanduser()
    t, m, e = config.teacher, config.model, config.evaluation
    if t.spec is None:
        raise CheckpointError(f"{run}: the config has no teacher (teacher.spec); this is not a distillation run")
    student_ckpt = last_checkpoint(run)
    ssl_ckpt = last_checkpoint(ssl_run) if ssl_run is not None else None
    train, test, data_desc = probe_datasets(config)
    probe = LinearConfig(
        epochs=e.epochs,
        lr=e.lr,
        batch_size=e.batch_size,
        val_fraction=e.val_fraction,
        seed=config.trainer.seed,
        progress=progress,
        num_workers=min(config.data.num_workers, 4),
    )

    student = resolve_encoder(checkpoint=student_ckpt)
    in_chans = int(student.metadata.get("in_chans", 3))
    candidates: list[tuple[str, str, Any, int | None]] = [
        ("student", f"MV-MR distilled {m.encoder} (student)", student, _encoder_params(student))
    ]
    teacher = None  # embeddings: teachers cannot embed new images
    if parse_teacher_spec(t.spec)[0] != "embeddings":
        teacher = build_teacher(t.spec, weights=t.weights, name=t.name, **t.options)
        if not isinstance(teacher, Teacher):  # only an embeddings: spec gives precomputed embeddings
            raise TypeError(f"teacher {t.spec!r} gave a {type(teacher).__name__}, not an image model")
        extractor = FeatureExtractor(
            teacher,
            mean=None,
            std=None,
            description=f"teacher {t.spec}",
            feature_dim=int(teacher.embed_dim),
            trainable=False,
        )
        candidates.append(("teacher", f"teacher {t.spec}", extractor, int(teacher.num_parameters)))
    if ssl_ckpt is not None:
        ssl = resolve_encoder(checkpoint=ssl_ckpt)
        candidates.append(
            ("ssl", f"MV-MR self-supervised {m.encoder} (no teacher, same budget)", ssl, _encoder_params(ssl))
        )
    rand = resolve_encoder(
        encoder=f"random:{m.encoder}", small_images=m.small_images, in_chans=in_chans, seed=config.trainer.seed
    )
    candidates.append(("random", f"random {m.encoder} (untrained)", rand, _encoder_params(rand)))

    rows: list[dict[str, Any]] = []
    for key, label, extractor, params in candidates:
        echo(f"linear probe: {label} ...")
        start = time.perf_counter()
        result = evaluate_frozen(extractor, train, test, linear=probe, encoder=label, dataset=data_desc).linear
        result.variant = key
        save_result(run, result)
        metrics = {
            k: result.metrics.get(k) for k in ("feature_dim", "test_top1", "test_top5", "val_top1", "chosen_epoch")
        }
        rows.append(
            {"row": key, "model": label, "parameters": params, **metrics, "seconds": time.perf_counter() - start}
        )
    timings: list[dict[str, Any]] = []
    for mode in (teacher_modes(config) if teacher is not None else ["cached"]) if timing else ():
        echo(f"timing {e.timing_steps} training steps, teacher {_MODE_LABELS[mode]} ...")
        timings.append(time_teacher_steps(config, mode=mode, steps=e.timing_steps))
    report = {
        "run": str(run),
        "teacher": t.spec,
        "student": m.encoder,
        "data": data_desc,
        "probe": probe.summary(),
        "rows": rows,
        "timings": timings,
        "device": _device_name(config),
    }
    text = format_report(report)
    (run / "distill_report.md").write_text(text, encoding="utf-8")
    (run / "distill_report.json").write_text(json.dumps(report, indent=2, default=float) + "\n", encoding="utf-8")
    with (run / "results.md").open("a", encoding="utf-8") as fh:
        fh.write(text + "\n")
    echo(text)
    return report


#: how the report names each way of getting the teacher's features
_MODE_LABELS = {
    "cached": "cached (read by index)",
    "live": "teacher run every step",
    "stored": "stored views (read by view)",
    "live_augmented": "teacher run every step on the augmented view",
}


def teacher_modes(config: Config) -> list[str]:
    """The ways of getting this run's teacher features that the report times: the run's own first, then
    the one it saves (a clean view cached or run every step; stored views or the teacher on every
    augmented view)."""
    t = config.teacher
    if t.view == "clean":
        return ["cached", "live"] if t.cache else ["live", "cached"]
    return ["stored", "live_augmented"] if t.cached_views > 0 else ["live_augmented"]


def time_teacher_steps(config: Config, *, mode: str = "cached", steps: int = 3) -> dict[str, Any]:
    """The step time of ``config`` with its teacher's features got one way (:func:`teacher_modes`: ``cached``,
    ``live``, ``stored``, ``live_augmented``), through the real trainer path
    (:func:`mvmr.training.timing.time_steps`)."""
    t = config.teacher
    teacher = {
        "cached": replace(t, view="clean", cache=True, cached_views=0),
        "live": replace(t, view="clean", cache=False, cached_views=0),
        "stored": replace(t, view="augmented", cache=True, cached_views=max(1, t.cached_views)),
        "live_augmented": replace(t, view="augmented", cached_views=0),
    }[mode]
    result = time_steps(replace(config, teacher=teacher), steps=steps)
    build = result.pop("cache_build_seconds").get(config.teacher.name)
    return {"mode": mode, **result, "cache_build_seconds": build}


def _device_name(config: Config) -> str:
    """The device the steps were timed on, in words."""
    if torch.cuda.is_available() and config.trainer.accelerator in ("auto", "gpu", "cuda"):
        return torch.cuda.get_device_name(0)
    import platform

    threads = torch.get_num_threads()
    return f"CPU ({platform.machine()}, {threads} torch thread{'s' if threads > 1 else ''})"


def _fmt_params(n: int | None) -> str:
    """A parameter count in k or M."""
    return "-" if n is None else f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}k"


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def format_report(report: dict[str, Any]) -> str:
    """The Markdown of a :func:`distill_report` dict: the probe table and the step-time table."""
    lines = [
        f"## Distillation report: {report['teacher']} -> {report['student']}",
        "",
        f"- data: `{report['data']}`",
        "- linear probe: " + ", ".join(f"{k}={v}" for k, v in report["probe"].items()),
        "",
    ]
    lines += [
        "| model | parameters | feature dim | test top-1 (%) | test top-5 (%) | val top-1 (%) | chosen epoch |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["rows"]:
        lines.append(
            f"| {r['model']} | {_fmt_params(r['parameters'])} | {_fmt(r['feature_dim'], 'd')} | "
            f"{_fmt(r['test_top1'])} | {_fmt(r['test_top5'])} | {_fmt(r['val_top1'])} | "
            f"{_fmt(r['chosen_epoch'], 'd')} |"
        )
    if report["timings"]:
        lines += [
            "",
            f"Training step (forward of both views, loss, backward, optimiser step; median of the timed "
            f"steps after one warm-up; {report['device']}):",
            "",
            "| teacher features | step time (s) | images/s | batch |",
            "|---|---:|---:|---:|",
        ]
        base = report["timings"][0]["seconds"]
        for i, tm in enumerate(report["timings"]):
            label = _MODE_LABELS.get(tm["mode"], tm["mode"])
            ratio = "" if i == 0 else f" ({tm['seconds'] / base:.1f}x)"
            lines.append(f"| {label} | {tm['seconds']:.3f}{ratio} | {tm['images_per_s']:.1f} | {tm['batch_size']} |")
    return "\n".join(lines) + "\n"
