"""One error type for every bad input: the CLI prints it as one line and exits non-zero."""


class AvvpError(Exception):
    """A user-facing error. The message is one line that names the file and the row or video."""


class Unreadable(AvvpError):
    """A file that exists but cannot be read back (truncated, damaged, foreign): one line naming it, why, and
    what rebuilds it. Callers that can rebuild the file themselves (a training checkpoint) catch this one."""

    def __init__(self, path, what: str, reason: str, remedy: str):
        self.path, self.what, self.reason, self.remedy = path, what, reason, remedy
        super().__init__(f"{path}: unreadable {what} ({reason})" + (f"; {remedy}" if remedy else ""))
