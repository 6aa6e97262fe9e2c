"""Exceptions raised by he2rna-sklearn.

Every error names the file or parameter at fault and says what to do about it.
"""

__all__ = ["FeatureFileError", "MissingMPPError", "SlideReadError", "WeightsNotFoundError"]


class SlideReadError(OSError):
    """A slide file cannot be opened or read (corrupt, truncated or unsupported)."""


class MissingMPPError(ValueError):
    """A slide carries no microns-per-pixel metadata and none was given."""


class WeightsNotFoundError(FileNotFoundError):
    """Pretrained weights (of a backbone or of an expression model) were asked for but
    cannot be found or downloaded."""


class FeatureFileError(ValueError):
    """A feature file's content does not match the checksum or the slide it was written for."""
