"""User-facing errors: the CLI prints these as one line and exits non-zero, with no traceback."""


class EnhanceError(Exception):
    """A problem with the user's input, configuration or environment (not a bug)."""

    exit_code = 2


class InputError(EnhanceError):
    """A source could not be opened or decoded."""


class ConfigError(EnhanceError):
    """A configuration file, key or value is wrong."""


class ModelNotFound(EnhanceError):
    """A model file was not found where we looked."""
