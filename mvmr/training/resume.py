"""Where a run resumes: the newest checkpoint of the run folder that really loads.

``resume="auto"`` tries ``checkpoints/last.ckpt`` first, then the numbered ``epochNNNN.ckpt``,
newest first. Each candidate is read the way the trainer will read it
(:func:`mvmr.models.read_lightning_checkpoint`, ``torch.load(weights_only=True)``) and must hold a
training state (``global_step`` and ``optimizer_states``). A candidate that is truncated, is not a
checkpoint at all, or pickles objects is skipped; when one is skipped a warning names the one taken
and why each newer one was not. When none loads, :class:`~mvmr.errors.CheckpointError` names
every file tried and its reason: the run never starts afresh over a folder of checkpoints on its own.

Checkpoints are written atomically (:class:`~mvmr.training.callbacks.AtomicCheckpointIO`), so a
torn file is not one of ours being cut short: it is a copy or a file system that failed.
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
    numbered = sorted((p for p in folder.iterdir() if _NUMBERED.match(p.name) and p.is_file()),
                      key=lambda p: int(_NUMBERED.match(p.name).group(1)), reverse=True)  # type: ignore[union-attr]
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
    """The checkpoint to resume from.

    ``None``/``"none"``: start afresh; ``"auto"``: the newest checkpoint of ``<run>/checkpoints``
    that loads (see the module docstring), or None when the folder holds none at all; otherwise the
    given checkpoint path, which must exist (it is not replaced by another one if it is corrupt:
    the trainer then fails naming it).
    """
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
                warnings.warn(f"resuming from {path} ({state}), the newest checkpoint that loads: {why}. "
                              f"Work done after that checkpoint is trained again.", stacklevel=2)
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
