"""/paysupport: the user's payments, how refunds work, a support ticket about one payment; /terms.

Telegram asks every bot that sells to answer /paysupport. The ticket goes through the support
service like any other (staff see it in /tickets with the payment); the payment must be the user's
own, checked when it is chosen and again when the ticket is stored: a forged id changes nothing.
"""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n

from bot.notify import Notifier
from bot.ui import show
from bot.views import paysupport as views
from bot.views.paysupport import PaySupportCB, TermsCB
from bot.views import View
from bot.views.support import ticket_opened
from domain.billing.service import BillingService
from domain.billing.storefront import Storefront
from domain.compliance import Document
from domain.db.uow import UnitOfWork
from domain.support.tickets import Category, SupportService, Ticket
from domain.tiers import Tier
from domain.users import User
from handlers.support import attachment_of, body_of, is_form_input, notify_staff


class PaySupportForm(StatesGroup):
    describe = State()  # data: payment (the payments.id the ticket is about)



def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("paysupport"))
    @router.callback_query(PaySupportCB.filter(F.action == "home"))
    async def home(
        event: Message | CallbackQuery, state: FSMContext, uow: UnitOfWork, user: User, billing: BillingService,
        storefront: Storefront,
    ) -> None:  # fmt: skip
        await state.clear()
        overview = await billing.overview(uow, user)
        await show(event, views.paysupport_view(overview.payments, storefront))

    @router.callback_query(PaySupportCB.filter(F.action == "pick"))
    async def pick(
        query: CallbackQuery, callback_data: PaySupportCB, state: FSMContext, uow: UnitOfWork, user: User,
        support: SupportService,
    ) -> None:  # fmt: skip
        payment = await support.own_payment(uow, user, callback_data.pay)  # before any state is set
        await state.set_state(PaySupportForm.describe)
        await state.update_data(payment=payment.id)
        await show(query, views.describe_payment_prompt(payment))

    @router.message(StateFilter(PaySupportForm.describe), is_form_input)
    async def describe(
        message: Message, state: FSMContext, uow: UnitOfWork, user: User, tier: Tier, support: SupportService,
        notifier: Notifier, i18n: I18n,
    ) -> None:  # fmt: skip
        payment = await support.own_payment(uow, user, int((await state.get_data()).get("payment", 0)))
        text = body_of(message)

        def render(ticket: Ticket, body: str) -> View:
            return views.staff_payment_ticket(ticket, body, payment)

        async def tell_staff(ticket: Ticket) -> None:
            await notify_staff(notifier, uow, i18n, support, ticket, render, text or "📎", "opened")

        ticket = await support.open(
            uow, user, tier, Category.BILLING.value, text, attachment_of(message), announce=tell_staff,
            payment_id=payment.id,
        )  # fmt: skip
        await state.clear()
        await show(message, ticket_opened(ticket))

    @router.message(Command("terms"))
    @router.callback_query(TermsCB.filter())
    async def terms(event: Message | CallbackQuery, storefront: Storefront, callback_data: TermsCB | None = None) -> None:
        doc = Document.parse(callback_data.doc) if callback_data is not None else Document.TERMS
        await show(event, views.terms_view(doc, storefront))

    return router
