"""Errors that the CLI reports as one clear line instead of a traceback."""


class MVMRError(Exception):
    """Base class for the errors mvmr raises on bad input."""


class ConfigError(MVMRError, ValueError):
    """A configuration key is unknown, has the wrong type, or an impossible value."""


class DataError(MVMRError, ValueError):
    """A dataset is missing, empty, corrupt, or inconsistent."""


class CheckpointError(MVMRError, ValueError):
    """A checkpoint or exported backbone cannot be loaded into the requested model."""
