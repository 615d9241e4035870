"""Errors that the CLI reports as one clear line instead of a traceback (and :class:`Preempted`, the
clean exit of a preempted run)."""


class MVMRError(Exception):
    """Base class for the errors mvmr raises on bad input."""


class ConfigError(MVMRError, ValueError):
    """A configuration key is unknown, has the wrong type, or an impossible value."""


class DataError(MVMRError, ValueError):
    """A dataset is missing, empty, corrupt, or inconsistent."""


class CheckpointError(MVMRError, ValueError):
    """A checkpoint or exported backbone cannot be loaded into the requested model."""


class DiskFullError(MVMRError, OSError):
    """A file could not be written because its file system is full (``ENOSPC``) or the user's quota
    is spent (``EDQUOT``). The message names the file, the space it needs and the space left; the
    writer has removed its temporary file and left the previous version of the file as it was.

    ``path``, ``needed`` (bytes, or None when unknown) and ``free`` (bytes, or None) hold the same
    facts for programs; ``errno`` is the original one.
    """

    def __init__(
        self, message: str, *, path: str, needed: int | None = None, free: int | None = None, errno: int | None = None
    ) -> None:
        super().__init__(errno, message)
        self.message, self.path, self.needed, self.free = message, path, needed, free
        self.filename = path

    def __str__(self) -> str:
        return self.message


class Preempted(SystemExit):
    """The run stopped on a preemption signal (SIGTERM, or SLURM's SIGUSR1 warning) after writing
    its resume checkpoint.

    A ``SystemExit``: uncaught, the process ends with status ``code`` (128 + the signal number, the
    shell's convention for a process ended by a signal, so that job chains do not mistake it for a
    finished run) and no traceback. ``str(err)`` says where the checkpoint is and how to resume.
    """

    def __init__(self, message: str, *, signum: int, checkpoint: str, step: int) -> None:
        super().__init__(128 + int(signum))
        self.message, self.signum, self.checkpoint, self.step = message, int(signum), checkpoint, int(step)

    def __str__(self) -> str:
        return self.message
