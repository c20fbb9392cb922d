"""Exceptions of the engine. Every message names the file (when there is one) and says what to do."""


class EngineError(Exception):
    """Base class for every error the engine raises on purpose."""


class UnreadableImageError(EngineError):
    """A file could not be turned into an image; ``str(err)`` is the reason shown to the user."""


class InputFolderError(EngineError):
    """The input (folder, archive) as a whole cannot be used: missing, empty, no images."""


class WeightsError(EngineError):
    """Backbone weights are missing, have the wrong checksum or do not fit the architecture."""


class FingerprintFileError(EngineError):
    """A fingerprint file is not readable, truncated, of an unknown version or carries forbidden content."""


class IncompatibleFingerprintsError(EngineError):
    """Two fingerprints were made under different protocols and cannot be compared."""


class CatalogueError(EngineError):
    """The catalogue folder is missing, incomplete or of another version."""
