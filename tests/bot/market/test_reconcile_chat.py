"""An order whose outcome is unknown, as the user meets it: a retry (a new order, or the same Confirm again) is
refused with an explanation in their language; the reconciler settles it from the terminal and the user gets
the real outcome as a message; then the account takes orders again. On both stacks, in en/ru/es."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from domain.db.models import AuditRow, OrderRow
from domain.db.uow import UnitOfWork
from domain.market.clock import ManualClock
from domain.market.gateway import OrderRequest
from domain.market.models import Side
from domain.trading.models import OrderStatus, order_magic
from tests.harness import Harness

USER = 1001
WANTED = {
    "en": ("has no known outcome yet", "its outcome is being checked with the broker", "was placed.", "Order preview"),
    "ru": ("ещё неизвестен", "его результат проверяется у брокера", "исполнен.", "Предпросмотр ордера"),
    "es": ("aún no tiene un resultado conocido", "se está comprobando su resultado", "se ejecutó.",
           "Vista previa de la orden"),
}  # fmt: skip


def _confirm(calls: list) -> str:  # type: ignore[type-arg]
    return next(data for c in calls for _, data in c.buttons if data and data.startswith("tr:ok:"))


@pytest.mark.parametrize("lang", ["en", "ru", "es"])
async def test_a_retry_while_unsettled_is_refused_then_the_real_outcome_is_told(
    harness: Harness, clock: ManualClock, lang: str
) -> None:
    refused, checking, placed, preview = WANTED[lang]
    lost = _confirm(await harness.send("/trade buy EURUSD 0.1", lang=lang))
    waiting = _confirm(await harness.send("/trade sell GBPUSD 0.1", lang=lang))
    order_id = lost.split(":")[-1]
    # the Confirm of ``lost`` reached the terminal, then its sender died before recording the answer
    async with UnitOfWork(harness.app.sessionmaker) as uow:
        await uow.trading.transition(order_id, USER, OrderStatus.PENDING, OrderStatus.SENDING, datetime.now(UTC))
        await uow.trading.mark_unknown(order_id, "MKT-TIMEOUT")
        order = await uow.trading.order(order_id)
        await uow.commit()
    assert order is not None
    gw = harness.app.market.hub.demo_gateway(order.login)
    fill = await gw.order_send(
        OrderRequest.market("EURUSD", Side.BUY, 0.1, client_id=order_id, magic=order_magic(order_id))
    )
    assert fill.ok

    new = await harness.send("/trade buy EURUSD 0.1", lang=lang)
    assert refused in new[0].text and "TRD-UNSETTLED" in new[0].text and order_id[:8] in new[0].text
    other = await harness.press(waiting, lang=lang)
    assert refused in other[-1].text
    again = await harness.press(lost, lang=lang)
    assert checking in next(c for c in again if c.method == "editMessageText").text
    assert len(await gw.positions()) == 1  # nothing more was sent
    async with harness.app.sessionmaker() as s:
        refusals = (await s.execute(select(AuditRow).where(AuditRow.action == "trade.refused_unsettled"))).all()
    assert len(refusals) == 2

    before = len(harness.telegram.calls)
    [settled] = await harness.app.market.reconciler.run_once()
    await harness.app.drain_outbox(harness.bot)
    told = [c for c in harness.telegram.calls[before:] if c.method == "sendMessage"]
    assert len(told) == 1 and int(told[0].params["chat_id"]) == USER
    assert placed in told[0].text and order_id[:8] in told[0].text and str(fill.order) in told[0].text
    assert settled.ticket == fill.order and settled.price == fill.price
    async with harness.app.sessionmaker() as s:
        row = await s.get(OrderRow, order_id)
    assert row is not None and row.status == "done"

    assert await harness.app.market.reconciler.run_once() == []  # once
    ok = await harness.press(waiting, lang=lang)  # the order previewed meanwhile goes through now
    assert "✅" in next(c for c in ok if c.method == "editMessageText").text
    assert preview in (await harness.send("/trade buy EURUSD 0.1", lang=lang))[0].text
