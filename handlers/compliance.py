"""/compliance: read and accept the disclosures, download or delete my data, my activity."""

from __future__ import annotations

import json

from aiogram import Bot, Dispatcher, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import BufferedInputFile, CallbackQuery, Message

from bot.middlewares.compliance import DisclosureReplay
from bot.ui import show
from bot.views.compliance import (
    ComplianceCB,
    accepted,
    activity_view,
    compliance_home,
    delete_confirm,
    document_view,
    erased,
    export_caption,
)
from bot.views.menu import MenuCB
from domain.compliance import ComplianceService, Document
from domain.db.uow import UnitOfWork
from domain.users import User, UserService



def make_router() -> Router:
    router = Router(name=__name__)

    @router.message(Command("compliance"))
    @router.callback_query(MenuCB.filter(F.target == "compliance"))
    @router.callback_query(ComplianceCB.filter(F.action == "home"))
    async def home(event: Message | CallbackQuery, uow: UnitOfWork, user: User, compliance: ComplianceService) -> None:
        await show(event, compliance_home(await compliance.status(uow, user.id)))

    @router.callback_query(ComplianceCB.filter(F.action == "doc"))
    async def document(
        query: CallbackQuery, callback_data: ComplianceCB, uow: UnitOfWork, user: User, compliance: ComplianceService
    ) -> None:
        doc = Document.parse(callback_data.value)
        await show(query, document_view(doc, await compliance.status(uow, user.id)))

    @router.callback_query(ComplianceCB.filter(F.action == "accept"))
    async def accept(
        query: CallbackQuery, callback_data: ComplianceCB, uow: UnitOfWork, user: User, compliance: ComplianceService,
        replays: DisclosureReplay, bot: Bot, dispatcher: Dispatcher,
    ) -> None:  # fmt: skip
        doc = Document.parse(callback_data.value)
        status = await compliance.accept(uow, user, doc.value)  # committed: the replay's own update sees it
        blocked = await replays.take(bot, user.id) if doc == Document.RISK and status.trading_unlocked else None
        text, markup = accepted(doc, status)
        replayed_press = blocked is not None and blocked.get("kind") == "press" and isinstance(query.message, Message)
        await show(query, (text, markup), answer=not replayed_press)  # a replayed press answers this query
        if blocked is not None:
            replays.start(dispatcher, bot, query.from_user, blocked, query.id)

    @router.callback_query(ComplianceCB.filter(F.action == "export"))
    async def export(query: CallbackQuery, uow: UnitOfWork, user: User, compliance: ComplianceService) -> None:
        document = await compliance.export(uow, user)
        data = json.dumps(document, ensure_ascii=False, indent=2, default=str).encode()
        await query.answer()
        await query.bot.send_document(  # type: ignore[union-attr]
            user.id,
            BufferedInputFile(data, filename=f"hybrid-trader-data-{user.id}.json"),
            caption=export_caption(),
        )

    @router.callback_query(ComplianceCB.filter(F.action == "activity"))
    async def activity(query: CallbackQuery, uow: UnitOfWork, user: User, compliance: ComplianceService) -> None:
        await show(query, activity_view(await compliance.activity(uow, user), user.id))

    @router.callback_query(ComplianceCB.filter(F.action == "delete"))
    async def delete(query: CallbackQuery) -> None:
        await show(query, delete_confirm())

    @router.callback_query(ComplianceCB.filter(F.action == "erase"))
    async def erase(
        query: CallbackQuery, uow: UnitOfWork, user: User, compliance: ComplianceService, users: UserService,
        state: FSMContext,
    ) -> None:  # fmt: skip
        erasure = await compliance.erase(uow, user)
        users.forget(user.id)
        await state.clear()
        await show(query, (erased(erasure), None))

    return router
