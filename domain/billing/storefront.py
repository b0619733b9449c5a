"""What one bot sells and how: its consumer payments policy, payment support contact and terms.

Inside Telegram every consumer plan is sold for Telegram Stars (subscription links, the trial, packs).
Card checkout (Stripe) for consumers is off unless the operator turns it on, and then it lives only on
the operator's own web page (``{WEB_PUBLIC_URL}/pay/``), never as a card button or a Stripe URL in the
chat. Managing an existing card subscription's renewal (cancel, resume) stays in the chat: it sells
nothing. Today there is one storefront, built from the settings; a tenant's bot will carry its own.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Storefront:
    card_on_web: bool = False  # the operator's switch: consumer card checkout on the web page
    web_url: str | None = None  # where that page is served (WEB_PUBLIC_URL)
    support_contact: str | None = None  # a payment support contact beside /paysupport's ticket button
    terms_text: str | None = None  # this bot's own terms; None: the platform's (bot/views/compliance.py)

    @property
    def card_page(self) -> bool:
        """Whether consumers may be sent to the card page (switched on and served somewhere)."""
        return self.card_on_web and bool(self.web_url)
