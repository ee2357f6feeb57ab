"""The table of usage limits an operator has set."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clearance.store.base import Base


class UsageLimit(Base):
    """One limit: a shared budget of its subject (a key, user, org, org group or everyone) on one model or all.

    A column left null is not limited.  Spend is kept in micro-dollars.
    """

    __tablename__ = "usage_limits"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    scope: Mapped[str] = mapped_column(String(8))  # key | user | org | group | all
    subject: Mapped[str] = mapped_column(String(64), default="")  # "" for scope "all"
    model: Mapped[str] = mapped_column(String(200), default="")  # "" for every model
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_minute: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spend_per_month_micro_usd: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    on_store_error: Mapped[str] = mapped_column(String(8), default="deny")  # deny | allow
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    created_by: Mapped[str] = mapped_column(String(200), default="")
