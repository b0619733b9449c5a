"""Feedback: a 1–5 rating with optional text, or a feature request; aggregates for staff."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from domain.clock import Clock, utcnow
from domain.errors import InvalidInput
from domain.users import User

MAX_TEXT = 2000


class Kind(StrEnum):
    RATING = "rating"
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class Feedback:
    id: int
    user_id: int
    kind: Kind
    rating: int | None
    text: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class FeedbackSummary:
    ratings: int
    average: float | None
    by_rating: dict[int, int] = field(hash=False)
    requests: int
    recent_requests: list[str] = field(hash=False)


class FeedbackRepository(Protocol):
    async def add(self, user_id: int, kind: str, rating: int | None, text: str, now: datetime) -> Feedback: ...
    async def summary(self, recent: int) -> FeedbackSummary: ...


class FeedbackUnit(Protocol):
    @property
    def feedback(self) -> FeedbackRepository: ...
    async def commit(self) -> None: ...


class FeedbackService:
    def __init__(self, clock: Clock = utcnow) -> None:
        self._clock = clock

    async def rate(self, uow: FeedbackUnit, user: User, rating: int, text: str = "") -> Feedback:
        if not 1 <= rating <= 5:
            raise InvalidInput("rating out of range", value=rating)
        return await self._add(uow, user, Kind.RATING, rating, text)

    async def request(self, uow: FeedbackUnit, user: User, text: str) -> Feedback:
        if not text.strip():
            raise InvalidInput("empty feature request")
        return await self._add(uow, user, Kind.REQUEST, None, text)

    async def _add(self, uow: FeedbackUnit, user: User, kind: Kind, rating: int | None, text: str) -> Feedback:
        text = text.strip()
        if len(text) > MAX_TEXT:
            raise InvalidInput("feedback too long", limit=MAX_TEXT)
        item = await uow.feedback.add(user.id, kind.value, rating, text, self._clock())
        await uow.commit()
        return item

    async def summary(self, uow: FeedbackUnit, recent: int = 5) -> FeedbackSummary:
        return await uow.feedback.summary(recent)
