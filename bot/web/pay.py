"""The operator's card page: consumers' Stripe Checkout and Customer Portal, outside the chat.

Served only with ``CONSUMER_CARD_CHECKOUT=web`` (and Stripe configured); otherwise every route is 404.
The chat never shows a card button or a Stripe URL: /premium and /billing show one link to
``{WEB_PUBLIC_URL}/pay/?t=<token>`` (:class:`CardPage`), a signed link token (``bot/web/auth.py``,
15 minutes) that names the user. The page lists the plans sold by card; each is a form that posts the
token back to ``/pay/checkout`` (or ``/pay/portal`` for a card subscriber), where the session is
created and the browser is redirected to Stripe. The token is the only proof of who is paying: no
token, a forged or an expired one → 401 and nothing is created at Stripe.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from aiogram import Bot
from aiohttp import web

from bot.views import cardpage as views
from bot.web.auth import Unauthorized, WebAuth
from domain.db.uow import UnitOfWork
from domain.errors import DomainError
from domain.users import User

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger(__name__)

PAY_PATH = "/pay/"
HEADERS = {
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    # the forms post here and are redirected to Stripe's hosted pages; nothing else loads
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self' https://checkout.stripe.com https://billing.stripe.com",
}


class CardPage:
    """Signed links from the chat to the card page."""

    def __init__(self, base_url: str, auth: WebAuth) -> None:
        self._base = base_url.rstrip("/")
        self._auth = auth

    def link(self, user_id: int) -> str:
        return f"{self._base}{PAY_PATH}?t={self._auth.issue_link_token(user_id)}"


def card_page(app: App) -> CardPage | None:
    """The card page's link maker, or None when consumers are not offered card checkout."""
    settings = app.settings
    if settings.consumer_card_checkout != "web" or not settings.web_public_url or app.billing.stripe is None:
        return None
    current, *old = settings.secrets()
    return CardPage(settings.web_public_url, WebAuth("", current, old_secrets=old))


def install(web_app: web.Application, app: App, bot: Bot) -> None:
    """Mount ``/pay/`` (the page), ``/pay/checkout`` and ``/pay/portal`` (its form posts)."""
    current, *old = app.settings.secrets()
    auth = WebAuth("", current, old_secrets=old)

    def page(body: str, status: int = 200) -> web.Response:
        return web.Response(text=body, status=status, content_type="text/html", charset="utf-8", headers=HEADERS)

    async def who(token: str) -> tuple[User | None, str]:
        """The user a link token names, and the page language (theirs, else English)."""
        if card_page(app) is None:
            raise web.HTTPNotFound()
        try:
            web_user = auth.verify_link_token(token)
        except Unauthorized as exc:
            log.info("card page refused: %s", exc)
            return None, "en"
        async with UnitOfWork(app.sessionmaker) as uow:
            user = await uow.users.get(web_user.id)
        return user, user.locale if user else "en"

    def render(locale: str, view: views.Render, *args: object, status: int = 200) -> web.Response:
        with app.i18n.context(), app.i18n.use_locale(locale):
            return page(view(*args), status)

    async def show(request: web.Request) -> web.Response:
        token = request.query.get("t", "")
        user, locale = await who(token)
        if user is None:
            return render(locale, views.expired_page, status=401)
        async with UnitOfWork(app.sessionmaker) as uow:
            overview = await app.billing.overview(uow, user)
        plans = [t for t in app.tiers if t.is_paid and app.billing.sells_by_card(t.code)]
        return render(locale, views.plans_page, plans, overview, token)

    async def form(request: web.Request) -> tuple[User | None, str, dict[str, str]]:
        data = await request.post()
        fields = {k: v for k, v in data.items() if isinstance(v, str)}
        user, locale = await who(fields.get("t", ""))
        return user, locale, fields

    async def back_to_chat() -> str:
        me = await bot.me()
        return f"https://t.me/{me.username}"

    async def checkout(request: web.Request) -> web.StreamResponse:
        user, locale, fields = await form(request)
        if user is None:
            return render(locale, views.expired_page, status=401)
        try:
            url = await app.billing.checkout_url(user, fields.get("tier", "")[:32], await back_to_chat())
        except DomainError as exc:
            log.info("card checkout refused for %s: %s", user.id, exc.code)
            return render(locale, views.error_page, exc.code, status=400 if exc.code != "BIL-PROVIDER" else 503)
        raise web.HTTPSeeOther(url, headers=HEADERS)

    async def portal(request: web.Request) -> web.StreamResponse:
        user, locale, fields = await form(request)
        if user is None:
            return render(locale, views.expired_page, status=401)
        try:
            async with UnitOfWork(app.sessionmaker) as uow:
                url = await app.billing.portal_url(uow, user, await back_to_chat())
        except DomainError as exc:
            log.info("card portal refused for %s: %s", user.id, exc.code)
            return render(locale, views.error_page, exc.code, status=400 if exc.code != "BIL-PROVIDER" else 503)
        raise web.HTTPSeeOther(url, headers=HEADERS)

    web_app.router.add_get(PAY_PATH, show)
    web_app.router.add_post(PAY_PATH + "checkout", checkout)
    web_app.router.add_post(PAY_PATH + "portal", portal)
