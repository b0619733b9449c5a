"""ORM models. Rows never leave this package: repositories return dataclasses."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC on both backends (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[str]: JSON}


class TierRow(Base):
    __tablename__ = "tiers"

    code: Mapped[str] = mapped_column(String(16), primary_key=True)
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    price_cents: Mapped[int] = mapped_column(Integer)
    price_stars: Mapped[int] = mapped_column(Integer)
    rate_per_minute: Mapped[int] = mapped_column(Integer)
    burst: Mapped[int] = mapped_column(Integer)
    quotas: Mapped[dict[str, Any]]
    features: Mapped[list[str]]


class UserRow(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(128))
    username: Mapped[str | None] = mapped_column(String(64), index=True)
    language: Mapped[str | None] = mapped_column(String(8))
    tg_language: Mapped[str | None] = mapped_column(String(16))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    role: Mapped[str] = mapped_column(String(16), default="user")
    tier: Mapped[str] = mapped_column(ForeignKey("tiers.code"), default="free")
    tier_expires_at: Mapped[datetime | None]
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    referred_by: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    notifications: Mapped[dict[str, Any]]
    is_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class SubscriptionRow(Base):
    __tablename__ = "subscriptions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(ForeignKey("tiers.code"))
    status: Mapped[str] = mapped_column(String(16))
    rail: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str | None] = mapped_column(String(128), unique=True)
    current_period_end: Mapped[datetime | None]
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    customer_id: Mapped[str | None] = mapped_column(String(64))  # billing (0003)
    grace_until: Mapped[datetime | None]  # billing (0003)
    reminded_for: Mapped[datetime | None]  # billing (0003): the period end last reminded about


class UsageEventRow(Base):
    __tablename__ = "usage_events"
    __table_args__ = (Index("ix_usage_events_user_at", "user_id", "at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_user_at", "user_id", "at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    actor_id: Mapped[int | None] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(64), index=True)
    surface: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]]


class ErrorEventRow(Base):
    __tablename__ = "error_events"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    code: Mapped[str] = mapped_column(String(32), index=True)
    ref: Mapped[str] = mapped_column(String(16), unique=True)
    user_hash: Mapped[str | None] = mapped_column(String(16))
    context: Mapped[str] = mapped_column(String(128))
    message: Mapped[str] = mapped_column(Text)


# --- Trading (revision 0002) ---


class TradingAccountRow(Base):
    __tablename__ = "trading_accounts"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", name="uq_trading_accounts_user_kind"),
        # one user per live (login, server) (revision 0010)
        Index("uq_trading_accounts_live_login_server", "login", "server", unique=True,
              sqlite_where=text("kind = 'live'"), postgresql_where=text("kind = 'live'")),
    )  # fmt: skip

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    login: Mapped[int] = mapped_column(BigInteger)
    server: Mapped[str] = mapped_column(String(64))
    password_enc: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TradingProfileRow(Base):
    __tablename__ = "trading_profiles"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    active: Mapped[str] = mapped_column(String(8))
    auto_trading: Mapped[bool] = mapped_column(Boolean)
    kill_switch: Mapped[bool] = mapped_column(Boolean)
    max_volume: Mapped[float] = mapped_column(Float)
    max_positions: Mapped[int] = mapped_column(Integer)
    max_daily_loss_pct: Mapped[float] = mapped_column(Float)
    risk_per_trade_pct: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[datetime]


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_user_created", "user_id", "created_at"),
        # SENDING orders per account: the reconciler's scan and the refusal of orders beside an unsettled one
        Index("ix_orders_status_account", "status", "account_kind", "login"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    account_kind: Mapped[str] = mapped_column(String(8))
    login: Mapped[int] = mapped_column(BigInteger)
    action: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str | None] = mapped_column(String(32))
    params: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    retcode: Mapped[int | None] = mapped_column(Integer)
    result: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class AlertRow(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_status_symbol", "status", "symbol"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    symbol: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[float] = mapped_column(Float)
    pct: Mapped[float] = mapped_column(Float)
    window_s: Mapped[int] = mapped_column(Integer)
    repeat: Mapped[bool] = mapped_column(Boolean)
    cooldown_s: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    created_price: Mapped[float | None] = mapped_column(Float)
    created_msc: Mapped[int] = mapped_column(BigInteger)
    last_triggered_msc: Mapped[int | None] = mapped_column(BigInteger)
    last_price: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime]


# --- Simulated demo accounts, shared by every process (revision 0009) ---


class SimAccountRow(Base):
    __tablename__ = "sim_accounts"

    login: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    version: Mapped[int] = mapped_column(Integer)
    state: Mapped[dict[str, Any]]
    deals: Mapped[int] = mapped_column(Integer)  # how many sim_deals rows the account has
    updated_at: Mapped[datetime]


class SimDealRow(Base):
    __tablename__ = "sim_deals"

    login: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("sim_accounts.login", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[list[Any]] = mapped_column(JSON)


class SimSequenceRow(Base):
    __tablename__ = "sim_sequences"

    name: Mapped[str] = mapped_column(String(16), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


# --- The MT5 terminal pool: one bridge endpoint per live account (revision 0010) ---


class TerminalRow(Base):
    """One terminal (a bridge endpoint) of the pool and the live account it is leased to."""

    __tablename__ = "mt5_terminals"
    __table_args__ = (UniqueConstraint("login", "server", name="uq_mt5_terminals_login_server"),)

    endpoint: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(12))  # free, leased, unhealthy
    login: Mapped[int | None] = mapped_column(BigInteger)
    server: Mapped[str | None] = mapped_column(String(64))
    user_id: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="SET NULL"))
    leased_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


# --- Billing (revision 0003) ---


class PaymentRow(Base):
    __tablename__ = "payments"
    __table_args__ = (Index("ix_payments_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    rail: Mapped[str] = mapped_column(String(16))
    kind: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(160), unique=True)
    created_at: Mapped[datetime]
    refunded_at: Mapped[datetime | None]


class StripeEventRow(Base):
    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    type: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[datetime]


class PaymentInboxRow(Base):
    """A Stars ``successful_payment`` or ``refunded_payment`` as received, stored before it is handled and
    retried until it is.

    (kind, charge_id) is unique: a second delivery of the same charge adds nothing. ``raw`` is the update as
    Telegram sent it (kept for support); the payment's fields are columns so a retry needs no Bot API types.
    """

    __tablename__ = "payment_inbox"
    __table_args__ = (
        UniqueConstraint("kind", "charge_id", name="uq_payment_inbox_kind_charge"),
        Index("ix_payment_inbox_status_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # paid | refunded
    charge_id: Mapped[str] = mapped_column(String(255))
    user_id: Mapped[int] = mapped_column(BigInteger)  # no foreign key: the payer may have no user row yet
    payload: Mapped[str] = mapped_column(Text)
    currency: Mapped[str] = mapped_column(String(8))
    total_amount: Mapped[int] = mapped_column(Integer)
    is_recurring: Mapped[bool] = mapped_column(Boolean)
    is_first_recurring: Mapped[bool] = mapped_column(Boolean)
    expires_at: Mapped[datetime | None]
    raw: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(16))  # pending | done
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(64))  # ErrorDNA code and ref, never a message
    told_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime]
    next_attempt_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class ReferralRewardRow(Base):
    __tablename__ = "referral_rewards"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    referee_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    referrer_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    payment_id: Mapped[str] = mapped_column(String(160))
    days: Mapped[int] = mapped_column(Integer)
    granted_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]  # the funding payment was refunded or charged back


class CreditRow(Base):
    __tablename__ = "billing_credits"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    ai_analyses: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]


class MeterReportRow(Base):
    __tablename__ = "meter_reports"

    usage_event_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    reported_at: Mapped[datetime]


# --- Support, feedback, compliance, broadcasts (revision 0004) ---


class TicketRow(Base):
    __tablename__ = "tickets"
    __table_args__ = (Index("ix_tickets_status_priority", "status", "priority"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    category: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(Integer)
    assignee_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    payment_id: Mapped[int | None] = mapped_column(Integer)  # payments.id the ticket is about (/paysupport)


class TicketMessageRow(Base):
    __tablename__ = "ticket_messages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ticket_id: Mapped[int] = mapped_column(Integer, ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    author_id: Mapped[int] = mapped_column(BigInteger)
    from_staff: Mapped[bool] = mapped_column(Boolean)
    text: Mapped[str] = mapped_column(Text)
    file_id: Mapped[str | None] = mapped_column(String(256))
    file_kind: Mapped[str | None] = mapped_column(String(16))
    at: Mapped[datetime]


class FeedbackRow(Base):
    __tablename__ = "feedback"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    rating: Mapped[int | None] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class ConsentRow(Base):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "document", "version", name="uq_consents_user_document_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger)  # no FK: consent may be recorded before the first update
    document: Mapped[str] = mapped_column(String(16))
    version: Mapped[str] = mapped_column(String(16))
    accepted_at: Mapped[datetime]


class BroadcastRow(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[int] = mapped_column(BigInteger)
    text: Mapped[str] = mapped_column(Text)
    photo_file_id: Mapped[str | None] = mapped_column(String(256))
    button_text: Mapped[str | None] = mapped_column(String(64))
    button_url: Mapped[str | None] = mapped_column(String(512))
    segment: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16), index=True)
    progress_message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]


class OutboxRow(Base):
    __tablename__ = "broadcast_outbox"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "user_id", name="uq_broadcast_outbox_broadcast_user"),
        Index("ix_broadcast_outbox_broadcast_status", "broadcast_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(Integer, ForeignKey("broadcasts.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime]


# --- AI agents (revision 0005) ---


class AgentStatsRow(Base):
    """One agent's decayed track record on one (symbol, timeframe): see domain.agents.consensus."""

    __tablename__ = "agent_stats"

    agent: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    alpha: Mapped[float] = mapped_column(Float)
    beta: Mapped[float] = mapped_column(Float)
    hits: Mapped[int] = mapped_column(Integer)
    misses: Mapped[int] = mapped_column(Integer)
    last_update: Mapped[int] = mapped_column(BigInteger)  # epoch seconds of the last resolved signal


class AgentStatsHistoryRow(Base):
    """Append-only: the stats after every update (how weights moved over time)."""

    __tablename__ = "agent_stats_history"
    __table_args__ = (Index("ix_agent_stats_history_symbol_tf_time", "symbol", "timeframe", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    alpha: Mapped[float] = mapped_column(Float)
    beta: Mapped[float] = mapped_column(Float)
    hits: Mapped[int] = mapped_column(Integer)
    misses: Mapped[int] = mapped_column(Integer)
    time: Mapped[int] = mapped_column(BigInteger)  # epoch seconds (the resolving bar)


class AgentSignalRow(Base):
    """A non-flat call of one agent (or of the consensus) at one closed bar, and its outcome."""

    __tablename__ = "agent_signals"
    __table_args__ = (
        UniqueConstraint("agent", "symbol", "timeframe", "time", name="uq_agent_signals_agent_symbol_tf_time"),
        Index("ix_agent_signals_symbol_tf_status", "symbol", "timeframe", "status"),
        Index("ix_agent_signals_time", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(32))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    direction: Mapped[str] = mapped_column(String(8))
    time: Mapped[int] = mapped_column(BigInteger)  # open time of the signal bar; entry is its close
    entry: Mapped[float] = mapped_column(Float)
    atr: Mapped[float] = mapped_column(Float)
    horizon: Mapped[int] = mapped_column(Integer)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(8))  # pending | hit | miss
    move: Mapped[float | None] = mapped_column(Float)  # realized move in the signal's direction (price units)
    move_atr: Mapped[float | None] = mapped_column(Float)
    resolved_at: Mapped[int | None] = mapped_column(BigInteger)  # epoch seconds of the resolving bar


class AgentVoteRow(Base):
    """Every agent's vote (flat ones too) and the consensus at each processed bar, with the weight it carried:
    the agents page's consensus history. Agent ``consensus`` is the decision itself (its weight is null)."""

    __tablename__ = "agent_votes"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    time: Mapped[int] = mapped_column(BigInteger, primary_key=True)  # open time of the bar voted on
    agent: Mapped[str] = mapped_column(String(32), primary_key=True)
    direction: Mapped[str] = mapped_column(String(8))  # buy | sell | flat
    confidence: Mapped[float] = mapped_column(Float)
    weight: Mapped[float | None] = mapped_column(Float)


class SignalSubscriptionRow(Base):
    """A symbol on a user's watchlist: its consensus signals reach the user."""

    __tablename__ = "signal_subscriptions"
    __table_args__ = (Index("ix_signal_subscriptions_symbol", "symbol"),)

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    created_at: Mapped[datetime]


class AgentProgressRow(Base):
    """The last closed bar the agent runner processed per (symbol, timeframe): a restart resumes after it."""

    __tablename__ = "agent_progress"

    symbol: Mapped[str] = mapped_column(String(32), primary_key=True)
    timeframe: Mapped[str] = mapped_column(String(8), primary_key=True)
    last_bar: Mapped[int] = mapped_column(BigInteger)


class SignalDigestRow(Base):
    """When a user's daily signal digest last went (their local date)."""

    __tablename__ = "signal_digests"

    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    local_day: Mapped[str] = mapped_column(String(10))
    sent_at: Mapped[datetime]


# --- Analytics (revision 0007) ---


class EquitySnapshotRow(Base):
    """Balance and equity of one trading account at one moment (epoch seconds, for fast series reads)."""

    __tablename__ = "equity_snapshots"
    __table_args__ = (
        UniqueConstraint("user_id", "login", "ts", name="uq_equity_snapshots_user_login_ts"),
        Index("ix_equity_snapshots_ts", "ts"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(8))
    login: Mapped[int] = mapped_column(BigInteger)
    ts: Mapped[int] = mapped_column(BigInteger)
    balance: Mapped[float] = mapped_column(Float)
    equity: Mapped[float] = mapped_column(Float)


# ---- auto-trading (0006) ------------------------------------------------------------------


class AutoTradeSettingsRow(Base):
    __tablename__ = "autotrade_settings"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True, autoincrement=False
    )
    threshold: Mapped[float] = mapped_column(Float)
    risk_pct: Mapped[float] = mapped_column(Float)
    timeframe: Mapped[str] = mapped_column(String(4))
    symbols: Mapped[list[str]]
    live_confirmed_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class AutoTradeRow(Base):
    """One claimed (user, symbol, timeframe, bar) signal: at most one auto order each."""

    __tablename__ = "autotrade_orders"
    __table_args__ = (
        UniqueConstraint("user_id", "symbol", "timeframe", "bar_time", name="uq_autotrade_orders_signal"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(4))
    bar_time: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    order_id: Mapped[str | None] = mapped_column(String(32))
    details: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


# --- Notification outbox (revision 0008) ---


class NotificationRow(Base):
    """One proactive message, rendered (text + Telegram reply_markup JSON), waiting or delivered (domain/outbox.py)."""

    __tablename__ = "notification_outbox"
    __table_args__ = (
        Index("ix_notification_outbox_status_next", "status", "next_attempt_at", "id"),
        Index("ix_notification_outbox_user_status", "user_id", "status"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    key: Mapped[str] = mapped_column(String(191), unique=True)
    user_id: Mapped[int] = mapped_column(BigInteger)  # the chat id (a user's private chat, or a group)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    markup: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16))
    attempts: Mapped[int] = mapped_column(Integer)
    next_attempt_at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
