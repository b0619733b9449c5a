"""Typed domain errors.

Every error a user can meet has a stable ``code`` (its ErrorDNA) and optional
``params`` for the localized message. The bot's error layer (``bot/errors.py``)
maps codes to text; the domain never formats user-facing strings.
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of all expected failures. ``code`` is stable and user-quotable."""

    code: str = "GEN-DOMAIN"

    def __init__(self, detail: str = "", **params: Any) -> None:
        super().__init__(detail or self.code)
        self.params = params


class InvalidInput(DomainError):
    """The user's input cannot be used (malformed, out of range)."""

    code = "INP-INVALID"


class NotFound(DomainError):
    code = "GEN-NOT-FOUND"


class Forbidden(DomainError):
    """The acting user may not do this (not the owner, not staff)."""

    code = "AUTH-FORBIDDEN"


class QuotaExceeded(DomainError):
    """A tier quota is used up; params: quota, limit."""

    code = "TIER-QUOTA"


class FeatureLocked(DomainError):
    """The user's tier lacks a feature; params: feature, tier (the cheapest that has it)."""

    code = "TIER-LOCKED"
