"""Exceptions raised by attnscope. Every user-facing failure is an :class:`AttnscopeError`.

The CLI prints ``error: <message>`` for these and exits with status 2; the server maps them to 4xx.
"""

from __future__ import annotations


class AttnscopeError(Exception):
    """Base class of every error attnscope raises on purpose."""


class ModelNotFoundError(AttnscopeError):
    """A model spec names nothing that can be loaded (unknown alias, missing path, package not installed)."""


class ModelLoadError(AttnscopeError):
    """A model was found but could not be loaded (corrupt weights, unsupported architecture, no network)."""


class ChecksumError(AttnscopeError):
    """A weight file's SHA-256 differs from the one the catalog expects."""


class InputError(AttnscopeError, ValueError):
    """The text or messages given are unusable (empty, invalid UTF-8, longer than the model's context)."""


class OutOfRangeError(AttnscopeError, IndexError):
    """A layer, head, query position or stack does not exist in this trace."""


class UnsupportedError(AttnscopeError):
    """The requested backend or feature does not apply to this model."""


class TraceFormatError(AttnscopeError):
    """A saved trace file is truncated, corrupt, foreign or of an unknown format version."""
