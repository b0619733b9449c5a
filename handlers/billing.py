"""/subscription, /billing, /premium, /referral, Stars payments, and the staff-only /refund.

Inside the chat every plan is sold for Telegram Stars. Card checkout and Stripe's portal are never
offered here: with the operator's switch on (CONSUMER_CARD_CHECKOUT=web) the views link to the card
page (bot/web/pay.py). Cancelling or resuming a card subscription's renewal stays here: it sells
nothing, and a subscriber must always be able to stop being charged from where they use the bot.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, LabeledPrice, Message, PreCheckoutQuery

from bot.ui import show
from bot.views import billing as views
from bot.views.billing import BillCB
from bot.views.menu import MenuCB
from bot.web.pay import CardPage
from domain.billing.model import StarsPayment
from domain.billing.service import BillingService
from domain.db.uow import UnitOfWork
from domain.quotas import QuotaService
from domain.referrals import ReferralService
from domain.tiers import Tier, TierCatalog
from domain.users import User
from handlers.filters import is_staff


class BotStars:
    """Telegram's Stars methods for the billing service."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def refund(self, user_id: int, charge_id: str) -> None:
        await self._bot.refund_star_payment(user_id=user_id, telegram_payment_charge_id=charge_id)

    async def set_canceled(self, user_id: int, charge_id: str, canceled: bool) -> None:
        await self._bot.edit_user_star_subscription(
            user_id=user_id, telegram_payment_charge_id=charge_id, is_canceled=canceled
        )


async def _home(bot: Bot) -> str:
    me = await bot.me()
    return f"https://t.me/{me.username}"


async def is_payment(message: Message) -> bool:
    return message.successful_payment is not None


async def is_refund(message: Message) -> bool:
    return message.refunded_payment is not None


def _card_link(card_page: CardPage | None, user: User) -> str | None:
    """The user's signed link to the operator's card page (None: consumers are not offered cards)."""
    return card_page.link(user.id) if card_page is not None else None


def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("subscription"))
    @router.callback_query(MenuCB.filter(F.target == "subscription"))
    async def subscription(
        event: Message | CallbackQuery, uow: UnitOfWork, user: User, tier: Tier, tiers: TierCatalog,
        billing: BillingService, quotas: QuotaService,
    ) -> None:  # fmt: skip
        overview = await billing.overview(uow, user)
        await show(event, views.subscription_view(overview, tier, tiers, await quotas.usage(user)))

    @router.message(Command("billing"))
    @router.callback_query(BillCB.filter(F.action == "history"))
    async def history(
        event: Message | CallbackQuery, uow: UnitOfWork, user: User, billing: BillingService,
        card_page: CardPage | None = None,
    ) -> None:  # fmt: skip
        link = _card_link(card_page, user)
        await show(event, views.billing_view(await billing.overview(uow, user), link))

    @router.message(Command("premium"))
    @router.callback_query(BillCB.filter(F.action == "plan"))
    async def premium(
        event: Message | CallbackQuery, uow: UnitOfWork, user: User, tier: Tier, tiers: TierCatalog,
        billing: BillingService, quotas: QuotaService, callback_data: BillCB | None = None,
        card_page: CardPage | None = None,
    ) -> None:  # fmt: skip
        overview = await billing.overview(uow, user)
        focus = callback_data.tier if callback_data is not None and callback_data.tier in tiers else ""
        link = _card_link(card_page, user)
        usage = await quotas.usage(user)
        await show(
            event, views.premium_view(tiers, tier, overview, usage, focus, packs=billing.packs_enabled, card_page=link)
        )

    @router.message(Command("referral"))
    async def referral(message: Message, uow: UnitOfWork, user: User, referrals: ReferralService, bot: Bot) -> None:
        link = f"{await _home(bot)}?start=ref_{user.referral_code}"
        await show(message, views.referral_view(await referrals.stats(uow, user), link))

    @router.callback_query(BillCB.filter(F.action == "trial"))
    async def trial(query: CallbackQuery, uow: UnitOfWork, user: User, billing: BillingService) -> None:
        await billing.start_trial(uow, user)  # the notice goes out through the outbox
        await query.answer()

    @router.callback_query(BillCB.filter(F.action.in_({"stars", "pack"})))
    async def stars_invoice(
        query: CallbackQuery, callback_data: BillCB, user: User, billing: BillingService, bot: Bot
    ) -> None:
        invoice = (
            billing.pack_invoice(user)
            if callback_data.action == "pack"
            else billing.stars_invoice(user, callback_data.tier)
        )
        title, description = views.invoice_texts(invoice.title_tier)
        link = await bot.create_invoice_link(
            title=title, description=description, payload=invoice.payload, currency="XTR",
            prices=[LabeledPrice(label=title, amount=invoice.amount)], subscription_period=invoice.subscription_period,
        )  # fmt: skip
        await show(query, views.pay_link_view(link, stars=invoice.amount, tier=invoice.title_tier))

    @router.callback_query(BillCB.filter(F.action.in_({"card", "portal"})))
    async def card_elsewhere(query: CallbackQuery, user: User, card_page: CardPage | None = None) -> None:
        # a button of an older message: never a Stripe session from the chat
        await show(query, views.card_elsewhere_view(_card_link(card_page, user)))

    @router.callback_query(BillCB.filter(F.action == "cancel"))
    async def cancel_ask(
        query: CallbackQuery, callback_data: BillCB, uow: UnitOfWork, user: User, billing: BillingService
    ) -> None:
        await show(query, views.cancel_confirm_view(await billing.own_subscription(uow, user, callback_data.sub)))

    @router.callback_query(BillCB.filter(F.action.in_({"cancelok", "resume"})))
    async def renewal(
        query: CallbackQuery,
        callback_data: BillCB,
        uow: UnitOfWork,
        user: User,
        billing: BillingService,
        bot: Bot,
        card_page: CardPage | None = None,
    ) -> None:
        cancel = callback_data.action == "cancelok"
        await billing.set_renewal(uow, user, callback_data.sub, cancel=cancel, api=BotStars(bot))
        link = _card_link(card_page, user)
        await show(query, views.billing_view(await billing.overview(uow, user), link))

    @router.pre_checkout_query()
    async def pre_checkout(query: PreCheckoutQuery, user: User, billing: BillingService) -> None:
        reason = billing.check_pre_checkout(user, query.invoice_payload, query.currency, query.total_amount)
        if reason is None:
            await query.answer(ok=True)
        else:
            await query.answer(ok=False, error_message=views.precheckout_error(reason))

    @router.message(is_payment)
    async def paid(message: Message, uow: UnitOfWork, user: User, billing: BillingService) -> None:
        sp = message.successful_payment
        assert sp is not None
        expires = sp.subscription_expiration_date
        payment = StarsPayment(
            charge_id=sp.telegram_payment_charge_id, payload=sp.invoice_payload, currency=sp.currency,
            total_amount=sp.total_amount, is_recurring=bool(sp.is_recurring), is_first_recurring=bool(sp.is_first_recurring),
            expires_at=datetime.fromtimestamp(expires, UTC) if expires else None,
        )  # fmt: skip
        await billing.stars_paid(uow, user, payment)  # notices go out through the outbox

    @router.message(is_refund)
    async def refunded(message: Message, uow: UnitOfWork, user: User, billing: BillingService) -> None:
        rp = message.refunded_payment
        assert rp is not None
        await billing.stars_refunded(uow, user, rp.telegram_payment_charge_id)

    @router.message(Command("refund"), is_staff)  # for anyone else: "unknown command"
    async def refund(message: Message, uow: UnitOfWork, user: User, billing: BillingService, bot: Bot) -> None:
        charge_id = ((message.text or "").split(maxsplit=1) + [""])[1].strip()
        if not charge_id:
            await message.answer(views.refund_usage())
            return
        notices = await billing.refund(uow, user, charge_id, BotStars(bot))
        await message.answer(views.refund_done(notices, charge_id))

    return router
