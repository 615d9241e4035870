"""Where a run resumes: the newest checkpoint of the run folder that really loads.

``resume="auto"`` tries ``checkpoints/last.ckpt``, then ``epochNNNN.ckpt`` newest first, reading
each as the trainer will (``weights_only=True``) and requiring a training state. A torn, foreign or
pickling candidate is skipped with a warning naming why; when none loads,
:class:`~mvmr.errors.CheckpointError` names every file tried: a run never starts afresh over a
folder of checkpoints on its own. (Our writes are atomic, so a torn file means a failed copy or disk.)
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

from mvmr.errors import CheckpointError
from mvmr.models import read_lightning_checkpoint

__all__ = ["find_resume_checkpoint", "resume_candidates", "check_resume_checkpoint"]

_NUMBERED = re.compile(r"epoch(\d+)\.ckpt$")


def resume_candidates(ckpt_dir: str | Path) -> list[Path]:
    """``last.ckpt``, then the numbered ``epochNNNN.ckpt`` of ``ckpt_dir``, newest (highest epoch) first."""
    folder = Path(ckpt_dir)
    if not folder.is_dir():
        return []
    last = folder / "last.ckpt"
    numbered = sorted(
        (p for p in folder.iterdir() if _NUMBERED.match(p.name) and p.is_file()),
        key=lambda p: int(_NUMBERED.match(p.name).group(1)),  # type: ignore[union-attr]
        reverse=True,
    )
    return ([last] if last.is_file() else []) + numbered


def check_resume_checkpoint(path: str | Path) -> str:
    """Load ``path`` as the trainer will and return a short description (``"epoch 1, step 6"``);
    :class:`~mvmr.errors.CheckpointError` saying why it cannot be resumed from."""
    ckpt = read_lightning_checkpoint(path)
    missing = [key for key in ("global_step", "optimizer_states") if key not in ckpt]
    if missing:
        raise CheckpointError(f"{path} holds weights but no training state (no {', '.join(missing)})")
    return f"epoch {ckpt.get('epoch', '?')}, step {ckpt['global_step']}"


def _reason(err: Exception) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def find_resume_checkpoint(run_dir: str | Path, resume: str | os.PathLike[str] | None) -> str | None:
    """The checkpoint to resume from: None for ``None``/``"none"``; for ``"auto"`` the newest one of
    ``<run>/checkpoints`` that loads (None when there is none); otherwise the given path, which must
    exist (a corrupt one is not replaced by another: the trainer then fails naming it)."""
    if resume is None or str(resume).lower() in ("none", "never", "false", ""):
        return None
    if str(resume) == "auto":
        candidates = resume_candidates(Path(run_dir) / "checkpoints")
        skipped: list[tuple[Path, str]] = []
        for path in candidates:
            try:
                state = check_resume_checkpoint(path)
            except CheckpointError as err:
                skipped.append((path, _reason(err)))
                continue
            if skipped:
                why = "; ".join(f"{p.name} skipped: {reason}" for p, reason in skipped)
                warnings.warn(
                    f"resuming from {path} ({state}), the newest checkpoint that loads: {why}. "
                    f"Work done after that checkpoint is trained again.",
                    stacklevel=2,
                )
            return str(path)
        if skipped:
            tried = "; ".join(f"{p}: {reason}" for p, reason in skipped)
            raise CheckpointError(
                f"cannot resume {run_dir}: no checkpoint in {Path(run_dir) / 'checkpoints'} loads. Tried {tried}. "
                f"Restore one from a backup, or start afresh with --resume none (resume=None)"
            )
        return None
    path = Path(resume)
    if not path.is_file():
        raise CheckpointError(f"resume checkpoint not found: {path}")
    return str(path)
