"""The one error type users see: a one-line message naming the file and the problem."""

from __future__ import annotations

from os import PathLike

__all__ = ["QcnnError"]


class QcnnError(Exception):
    """A user-facing failure: bad file, bad spec, bad input shape, unknown backend.

    The CLI prints ``str(err)`` on one line and exits non-zero; it never shows a traceback
    for this type.
    """

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)
