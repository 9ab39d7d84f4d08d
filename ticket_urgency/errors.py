"""Exceptions whose message is meant for the user as it is (no traceback)."""


class UserFacingError(RuntimeError):
    """An expected failure: the CLI prints its message and exits non-zero."""
