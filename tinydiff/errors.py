"""One exception family for everything a user can get wrong, so callers can catch `TinydiffError`."""


class TinydiffError(Exception):
    """Base class: a problem the user can fix, described in one line."""


class ConfigError(TinydiffError, ValueError):
    """An unknown name or an out-of-range setting (schedule, preset, sampler, steps, ...)."""


class InputError(TinydiffError, ValueError):
    """An array, image or argument whose shape, dtype or values cannot be used."""


class DataError(TinydiffError):
    """MNIST cannot be found, read or downloaded under the data root."""


class CheckpointError(TinydiffError):
    """A checkpoint is missing, damaged, or not a tinydiff checkpoint."""


class TrainingError(TinydiffError):
    """Training cannot go on (e.g. the loss became NaN); the last good checkpoint is kept."""
