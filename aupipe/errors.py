"""aupipe's exception family: every error carries a one-line, user-facing message."""


class AupipeError(Exception):
    """Base class; ``str(err)`` is the one line shown to the user. ``exit_code`` for the CLI."""

    exit_code = 1


class InputError(AupipeError):
    """A missing, unreadable, corrupt or empty input (video, folder, file)."""

    exit_code = 2


class SettingsError(AupipeError):
    """A setting out of range or contradicting another (a bad option value)."""

    exit_code = 2


class MappingError(AupipeError):
    """A malformed or invalid mapping YAML file."""

    exit_code = 3


class OutputError(AupipeError):
    """An output path that cannot be written."""

    exit_code = 4


class ModelError(AupipeError):
    """A model folder that cannot be used: missing, damaged, or trained for other features/mapping/version."""

    exit_code = 5


class AupipeWarning(UserWarning):
    """Something the user should know that does not stop the run (e.g. no face in some frames)."""
