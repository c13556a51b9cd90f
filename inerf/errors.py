"""User-facing errors.

Every problem caused by the user's input (a missing file, a malformed pose, a checkpoint of another
model) raises :class:`InerfError` with a one-line message; the CLI prints it and exits with status 2
instead of showing a traceback.
"""


class InerfError(Exception):
    """A clear, one-line error about the user's input."""
