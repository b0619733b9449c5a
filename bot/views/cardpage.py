"""The card page's HTML (bot/web/pay.py): plans sold by card, the card subscriber's portal, refusals.

Rendered in the user's language inside the caller's i18n context; every dynamic value is escaped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from html import escape

from aiogram.utils.i18n import gettext as _

from bot.i18n import N_
from bot.views.common import tier_name
from bot.views.plans import limits_line
from domain.billing.model import Overview, Rail
from domain.tiers import Tier

Render = Callable[..., str]

ERRORS = {
    "BIL-NO-PLAN": N_("That plan isn't sold by card. Nothing was charged."),
    "BIL-NO-SUB": N_("There's no card subscription to manage."),
    "BIL-PROVIDER": N_("Stripe didn't answer. Nothing was charged; please try again in a minute."),
}

_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:34rem;margin:2rem auto;padding:0 1rem;line-height:1.45}"
    "form{margin:.8rem 0}button{font-size:1rem;padding:.6rem 1rem;border-radius:.5rem;border:1px solid #888;"
    "cursor:pointer;width:100%}.plan{border:1px solid #ccc;border-radius:.6rem;padding:.6rem 1rem;margin:.8rem 0}"
    ".muted{color:#666;font-size:.9rem}"
)


def _document(title: str, body: Sequence[str]) -> str:
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width,initial-scale=1'>"
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1>{''.join(body)}</body></html>"
    )


def _form(action: str, token: str, label: str, tier: str = "") -> str:
    hidden = f"<input type='hidden' name='t' value='{escape(token, quote=True)}'>"
    if tier:
        hidden += f"<input type='hidden' name='tier' value='{escape(tier, quote=True)}'>"
    return f"<form method='post' action='{action}'>{hidden}<button type='submit'>{escape(label)}</button></form>"


def plans_page(plans: Sequence[Tier], overview: Overview, token: str) -> str:
    intro = _("Pay for your plan by card. Payments are processed by Stripe.")
    body = [f"<p>{escape(intro)}</p>"]
    for tier in plans:
        usd = f"{tier.price_cents / 100:.2f}"
        body.append(
            "<div class='plan'>"
            f"<h2>{escape(tier_name(tier.code))}</h2>"
            f"<p class='muted'>{escape(limits_line(tier))}</p>"
            + _form("checkout", token, _("Pay ${usd} a month by card").format(usd=usd), tier.code)
            + "</div>"
        )
    if not plans:
        none = _("No plan is sold by card right now. In Telegram, /premium sells every plan for Stars.")
        body.append(f"<p>{escape(none)}</p>")
    if overview.stripe_enabled and any(s.rail == Rail.STRIPE and s.customer_id for s in overview.subscriptions):
        body.append(_form("portal", token, _("Manage my card and invoices")))
    after = _(
        "The plan switches on in the bot as soon as Stripe confirms the payment. "
        "Questions about a payment: /paysupport in the bot."
    )
    body.append(f"<p class='muted'>{escape(after)}</p>")
    return _document(_("Hybrid Trader: pay by card"), body)


def expired_page() -> str:
    hint = _("Open a fresh link from /premium in the bot: links work for 15 minutes.")
    return _document(_("This link has expired"), [f"<p>{escape(hint)}</p>"])


def error_page(code: str) -> str:
    message = _(ERRORS[code]) if code in ERRORS else _("Card payments aren't available right now. Nothing was charged.")
    return _document(_("Hybrid Trader: pay by card"), [f"<p>{escape(message)}</p>"])
