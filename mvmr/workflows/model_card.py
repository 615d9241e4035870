"""The model card of an exported encoder: a ``README.md`` that the Hugging Face Hub shows as it is.

:func:`model_card` writes YAML metadata (``library_name``, ``tags``, ``pipeline_tag``, and the Hub
dataset the encoder was trained on, if any) followed by Markdown: how to load the export, how it
was trained (method, encoder, data, epochs and steps, representations or teacher, optimiser),
every evaluation result of the run folder (``results/*.json``, written by ``mvmr evaluate`` and
``mvmr distill --evaluate``) and the run's whole resolved config.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from mvmr.config import Config, to_yaml
from mvmr.evaluation.results import ProtocolResult, format_metrics_table
from mvmr.methods import get_method

__all__ = ["model_card", "describe_data"]

_TAGS = ["mvmr", "self-supervised-learning", "image-feature-extraction"]


def describe_data(config: Config) -> str:
    """The training data in one line: kind, where it is, split, image size and channels."""
    d = config.data
    where = d.name if d.kind == "hf" else d.root
    channels = "as stored" if d.channels is None else d.channels
    subset = f", a random subset of {d.subset} images" if d.subset is not None else ""
    return f"{d.kind} `{where}`, split `{d.split}`{subset}, {d.image_size} px, channels: {channels}"


def _training_rows(config: Config, epochs: int, steps: int) -> list[tuple[str, str]]:
    """The rows of the card's training table."""
    method = get_method(config.method)
    m, o = config.model, config.optim
    rows = [
        ("method", f"`{config.method}`: {method.description}" if method.description else f"`{config.method}`"),
        (
            "encoder",
            f"`{m.encoder}`{' (small-image stem)' if m.small_images else ''}, projector "
            f"`{m.projector or 'none'}` (not exported)",
        ),
        ("data", describe_data(config)),
        (
            "trained",
            f"{epochs} epochs of {config.trainer.max_epochs}, {steps} optimiser steps, batch "
            f"{config.data.batch_size} per process",
        ),
        ("optimiser", f"{o.optimizer}, lr {o.lr:g}, weight decay {o.weight_decay:g}, {o.scheduler} schedule"),
    ]
    if method.uses_targets:
        rows.append(
            (
                "representations",
                ", ".join(f"{s.name} (weight {s.weight:g})" for s in config.representations.items) or "none",
            )
        )
    if config.teacher.spec is not None:
        rows.append(("teacher", f"`{config.teacher.spec}` (beta {config.teacher.beta:g})"))
    return rows


def _results_section(results: Sequence[ProtocolResult]) -> list[str]:
    """Every evaluation result with its data, encoder, settings and metrics table."""
    if not results:
        return [
            "No evaluation results were found in the run folder (`mvmr evaluate ... --out RUN_DIR` writes "
            "them to `RUN_DIR/results/`).",
            "",
        ]
    out: list[str] = []
    for result in results:
        out += [
            f"### {result.key}",
            "",
            f"- data: `{result.dataset or 'not recorded'}`",
            f"- encoder: `{result.encoder or 'not recorded'}`",
        ]
        if result.config:
            out.append("- settings: " + ", ".join(f"{k}={v}" for k, v in result.config.items() if v is not None))
        out += ["", format_metrics_table(result), ""]
    return out


def model_card(
    config: Config,
    *,
    epochs: int,
    steps: int,
    results: Sequence[ProtocolResult],
    usage: str,
    library_name: str = "mvmr",
    title: str | None = None,
) -> str:
    """The card of an encoder trained with ``config`` for ``epochs`` epochs (``steps`` optimiser steps).

    Args:
        config: the run's resolved config.
        epochs, steps: how far the exported checkpoint had trained.
        results: the run's evaluation results (every one is listed with all its metrics).
        usage: the Python lines that load the export (shown in a code block).
        library_name: the Hub's ``library_name`` of the export (``mvmr``, or ``timm`` for timm's layout).
        title: the heading; default ``<config.name>: <encoder> trained with <method>``.
    """
    metadata: dict[str, object] = {
        "library_name": library_name,
        "tags": list(_TAGS),
        "pipeline_tag": "image-feature-extraction",
    }
    d = config.data
    if d.kind == "hf" and d.name is not None and not Path(d.name).expanduser().exists():  # a Hub dataset id
        metadata["datasets"] = [d.name]
    heading = title or f"{config.name}: {config.model.encoder} trained with {config.method}"
    lines = [
        "---",
        yaml.safe_dump(metadata, sort_keys=False).rstrip(),
        "---",
        "",
        f"# {heading}",
        "",
        "An image encoder trained with mvmr (MV-MR, Kinakh, Drozdova and Voloshynovskiy, 2023: multi-view, "
        "multi-representation self-supervised learning and label-free distillation with distance "
        "correlation).",
        "",
        "## Use",
        "",
        "```python",
        usage.strip(),
        "```",
        "",
        "Images are float tensors in [0, 1], shape (B, C, H, W), resized (shorter side) and centre-cropped to "
        f"{config.data.image_size} px as in training.",
        "",
        "## Training",
        "",
        "| | |",
        "| --- | --- |",
    ]
    lines += [f"| {key} | {value} |" for key, value in _training_rows(config, epochs, steps)]
    lines += ["", "## Evaluation", ""]
    lines += _results_section(results)
    lines += [
        "## Configuration",
        "",
        "The run's resolved config (`mvmr info --config config.yaml` prints the same):",
        "",
        "```yaml",
        to_yaml(config).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
