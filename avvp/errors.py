"""One error type for every bad input: the CLI prints it as one line and exits non-zero."""


class AvvpError(Exception):
    """A user-facing error. The message is one line that names the file and the row or video."""
