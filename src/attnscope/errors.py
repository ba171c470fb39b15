"""Exceptions raised by attnscope. Every user-facing failure is an :class:`AttnscopeError`.

Each class carries a machine-readable ``code`` and the HTTP ``status`` the server answers with; the
server's error body is ``{"detail": "<one line>", "code": "<code>"}`` and the CLI prints
``error: <message>`` and exits with status 2.
"""

from __future__ import annotations


class AttnscopeError(Exception):
    """Base class of every error attnscope raises on purpose."""

    code = "error"
    status = 400

    def __str__(self) -> str:  # one line, whatever the message was built from
        return " ".join(super().__str__().split())


class ModelNotFoundError(AttnscopeError):
    """A model spec names nothing that can be loaded (unknown alias, missing path, package not installed)."""

    code = "model_not_found"
    status = 404


class ModelLoadError(AttnscopeError):
    """A model was found but could not be loaded (corrupt weights, unsupported architecture, no network)."""

    code = "model_load_failed"


class ChecksumError(AttnscopeError):
    """A weight file's SHA-256 differs from the one the catalog expects."""

    code = "checksum_mismatch"


class InputError(AttnscopeError, ValueError):
    """The text, options or request are unusable (empty, invalid UTF-8, too long, unknown names, bad numbers)."""

    code = "bad_input"


class OutOfRangeError(InputError, IndexError):
    """A layer, head, query position or stack does not exist in this trace."""

    code = "out_of_range"


class TooLongError(InputError):
    """The text is longer than the model's context or the documented size limit."""

    code = "too_long"


class UnsupportedError(AttnscopeError):
    """The requested backend, method or feature does not apply to this model."""

    code = "unsupported"


class TraceFormatError(AttnscopeError):
    """A saved trace file is truncated, corrupt, foreign or of an unknown format version."""

    code = "bad_trace_file"


class NotFoundError(AttnscopeError):
    """A trace, run or job that the request names does not exist (any more)."""

    code = "not_found"
    status = 404


class AuthenticationError(AttnscopeError):
    """A request to a protected endpoint came without the right API key."""

    code = "unauthorized"
    status = 401


class CancelledError(AttnscopeError):
    """A long job was cancelled by its user."""

    code = "cancelled"
    status = 409


class ScorerError(AttnscopeError):
    """A black-box scorer (an HTTP endpoint or a callable) failed or answered something unusable."""

    code = "scorer_failed"
    status = 502
