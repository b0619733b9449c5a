"""aiogram routers, one module per command family, and THE command registry.

Every command is declared once in :data:`COMMANDS`. A command that is not
listed here is not served, not shown in /help and not in Telegram's menu.
Account and money commands (and staff tools) are ``private=True``: in a group
they and their buttons answer that they work in a private chat only
(``bot/middlewares/private.py``). What moves money or links an account is
declared with ``money=``: only that waits for the risk disclosure
(``bot/middlewares/compliance.py``); reading (quotes, charts, alerts, AI
analyses, balance, positions, history) works before it.
"""

from __future__ import annotations

from aiogram import Router

from bot.i18n import N_
from bot.registry import Category, Command, Money, Registry
from bot.views.billing import PREFIX as BILLING_PREFIX
from bot.views.paysupport import PAYSUPPORT_PREFIX, TERMS_PREFIX
from domain.tiers import Feature
from domain.users import Role
from handlers import agents, analytics, billing, compliance, core, fallback, feedback, market, settings, staff, status, support, trading
from handlers import paysupport

COMMANDS: tuple[Command, ...] = (
    Command("start", core.make_router, N_("Main menu"), Category.CORE),
    Command("help", core.make_router, N_("What I can do"), Category.CORE, button=N_("📖 Help")),
    Command("status", status.make_router, N_("System status and your quotas"), Category.CORE, button=N_("🩺 Status")),
    Command(
        "config",
        settings.make_router,
        N_("Language, time zone, notifications"),
        Category.CORE,
        button=N_("⚙️ Settings"),
        callbacks=("cfg",),
    ),
    Command("cancel", core.make_router, N_("Stop the current step"), Category.CORE),
    # Performance analytics and the inline dashboard
    Command("performance", analytics.make_router, N_("Your trading performance: metrics and equity curve"),
            Category.CORE, feature=Feature.ANALYTICS, private=True),  # fmt: skip
    Command("analytics", analytics.make_router, N_("Dashboard: portfolio, alerts, watchlist, agents"), Category.CORE,
            button=N_("📊 Dashboard"), private=True),  # fmt: skip
    Command("subscription", billing.make_router, N_("Your plan, status and usage"), Category.BUSINESS, private=True),
    Command("billing", billing.make_router, N_("Payments, invoices, cancel or resume"), Category.BUSINESS,
            callbacks=(BILLING_PREFIX,), private=True),  # fmt: skip
    Command("premium", billing.make_router, N_("Compare plans, start a trial, upgrade"), Category.BUSINESS,
            private=True),  # fmt: skip
    Command("referral", billing.make_router, N_("Invite friends, earn Pro days"), Category.BUSINESS, private=True),
    # What Telegram asks of a bot that sells: payment help, and the terms
    Command("paysupport", paysupport.make_router, N_("Payment help: your payments, refunds, a ticket"),
            Category.BUSINESS, callbacks=(PAYSUPPORT_PREFIX,), private=True),  # fmt: skip
    Command("terms", paysupport.make_router, N_("Terms of service, privacy, risk disclosure"), Category.BUSINESS,
            callbacks=(TERMS_PREFIX,)),  # fmt: skip
    Command("refund", billing.make_router, N_("Refund a Telegram Stars payment"), Category.BUSINESS, role=Role.SUPPORT,
            private=True),  # fmt: skip
    Command("price", market.make_router, N_("Live quotes: bid, ask, spread, day range"), Category.TRADING),
    Command("chart", market.make_router, N_("Candlestick chart with your alert levels"), Category.TRADING,
            feature=Feature.CHARTS, callbacks=("ch",)),  # fmt: skip
    Command("alerts", market.make_router, N_("Price alerts: list, add, pause, delete"), Category.TRADING,
            feature=Feature.PRICE_ALERTS, callbacks=("al",)),  # fmt: skip
    Command("positions", trading.make_router, N_("Open positions with live P/L"), Category.TRADING,
            feature=Feature.DEMO_TRADING, callbacks=("ps",), private=True,
            money=Money(typed=False, buttons=("ps:close", "ps:sltp"))),  # fmt: skip
    Command("balance", trading.make_router, N_("Balance, equity and margin"), Category.TRADING,
            feature=Feature.DEMO_TRADING, private=True),  # fmt: skip
    Command("trade", trading.make_router, N_("Place a market order (preview, then confirm)"), Category.TRADING,
            feature=Feature.DEMO_TRADING, callbacks=("tr", "tf"), private=True, money=Money(buttons=("tr", "tf"))),  # fmt: skip
    Command("close", trading.make_router, N_("Close a position, a symbol or all"), Category.TRADING,
            feature=Feature.DEMO_TRADING, private=True, money=Money()),  # fmt: skip
    Command("history", trading.make_router, N_("Closed deals with totals"), Category.TRADING,
            feature=Feature.DEMO_TRADING, callbacks=("hi",), private=True),  # fmt: skip
    Command("risk", trading.make_router, N_("Your risk limits"), Category.TRADING, feature=Feature.DEMO_TRADING,
            callbacks=("rk",), private=True),  # fmt: skip
    Command("trading", trading.make_router, N_("Account in use, kill switch, today's P/L, live account"),
            Category.TRADING, feature=Feature.DEMO_TRADING, callbacks=("tg", "at"), private=True,
            # auto-trading settings, the live account (switch to it, link one) and the auto-trading panel
            money=Money(typed=False, args=("threshold", "risk", "symbol"), buttons=("tg:auto", "tg:live", "tg:link", "at"))),  # fmt: skip
    # AI agents
    Command("ai", agents.make_router, N_("AI analysis: each agent's vote and the consensus"), Category.TRADING),
    Command("signals", agents.make_router, N_("AI signals with outcomes; follow symbols"), Category.TRADING,
            feature=Feature.SIGNALS_DIGEST, callbacks=("sg",)),  # fmt: skip
    Command("agents", agents.make_router, N_("The AI agents: ideas, health, hit rates, weights"), Category.BUSINESS),
    # Support, feedback, compliance; staff commands (role=...) are invisible to everyone else.
    Command("support", support.make_router, N_("Contact support: tickets and answers"), Category.BUSINESS,
            callbacks=("sup",), private=True),  # fmt: skip
    Command("feedback", feedback.make_router, N_("Rate the bot or suggest a feature"), Category.BUSINESS,
            callbacks=("fb",)),  # fmt: skip
    Command("compliance", compliance.make_router, N_("Risk disclosure, terms, privacy; export or delete your data"),
            Category.BUSINESS, callbacks=("cmp",), private=True),  # fmt: skip
    Command("tickets", staff.make_router, N_("Support queue"), Category.CORE, callbacks=("tk",), role=Role.SUPPORT,
            private=True),  # fmt: skip
    Command("user", staff.make_router, N_("Look up a user"), Category.CORE, role=Role.SUPPORT, private=True),
    Command("grant", staff.make_router, N_("Grant a plan for some days"), Category.CORE, role=Role.ADMIN, private=True),
    Command("role", staff.make_router, N_("Grant or revoke a staff role"), Category.CORE, role=Role.ADMIN,
            private=True),  # fmt: skip
    Command("admin", staff.make_router, N_("Admin dashboard"), Category.CORE, role=Role.ADMIN, private=True),
    Command("broadcast", staff.make_router, N_("Message a segment of users"), Category.CORE, callbacks=("bc",),
            role=Role.ADMIN, private=True),  # fmt: skip
)


def default_registry() -> Registry:
    return Registry(COMMANDS)


def dialog_router() -> Router:
    """The router of aiogram-dialog dialogs (``setup_dialogs`` goes on it), after every command router."""
    return analytics.make_dialog_router()


def last_routers() -> list[Router]:
    """Routers that must come after every command router and the dialogs."""
    return [fallback.make_router()]
