"""SECRET_KEY rotation: new key first, old ones after it. What was sealed or signed under the old key keeps
working (a linked MT5 account, a web-view link until it expires); stored credentials are re-sealed under the
new key at start-up. Runs on both stacks."""

from __future__ import annotations

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.settings import Settings
from bot.web.app import create_web_app
from bot.web.auth import Unauthorized, WebAuth
from bot.web.miniapp import MINIAPP
from domain.db.models import TradingAccountRow, UserRow
from domain.market.clock import ManualClock
from domain.trading.crypto import SecretBox
from tests.bot.market.conftest import START, Unlimited
from tests.fakes.telegram import TOKEN, FakeTelegram
from tests.harness import build_harness

OLD, NEW = "old-secret-key-1", "new-secret-key-2"


async def _stored_token(sessionmaker: object) -> str:
    async with sessionmaker() as s:  # type: ignore[operator]
        return str((await s.execute(select(TradingAccountRow.password_enc))).scalar_one())


async def test_credentials_and_links_survive_a_rotation_and_are_resealed(
    stack: Settings, telegram: FakeTelegram
) -> None:
    clock = ManualClock(START)
    before = await build_harness(stack.model_copy(update={"secret_key": SecretStr(OLD)}), telegram, limiter=Unlimited())
    try:
        before.app.market.hub.use_clock(clock)
        await before.send("/start")
        async with before.app.sessionmaker() as s:
            (await s.get(UserRow, 1001)).tier = "basic"  # type: ignore[union-attr]
            await s.commit()
        before.app.users.forget(1001)
        login = before.app.market.hub.terminal.open_real_account("Rot-Pa55-word", 5000.0)
        await before.press("tg:link:0")
        await before.send(str(login))
        await before.send("HybridTrader-Sim")
        assert "linked" in (await before.send("Rot-Pa55-word"))[-1].text
        await before.press("tg:live:0")
        sealed_old = await _stored_token(before.app.sessionmaker)
        assert SecretBox(OLD.encode()).open(sealed_old) == "Rot-Pa55-word"
        link = WebAuth(TOKEN, OLD.encode()).issue_link_token(1001)  # a web-view link handed out before
        expired = WebAuth(TOKEN, OLD.encode()).issue_link_token(1001, ttl=-1)
    finally:
        await before.close()

    rotated = stack.model_copy(update={"secret_key": SecretStr(f"{NEW},{OLD}")})
    assert rotated.secrets() == (NEW.encode(), OLD.encode())
    after = await build_harness(rotated, telegram, limiter=Unlimited())
    try:
        after.app.market.hub.use_clock(clock)
        resealed = await _stored_token(after.app.sessionmaker)  # re-sealed at start-up
        assert resealed != sealed_old and SecretBox(NEW.encode()).open(resealed) == "Rot-Pa55-word"
        with pytest.raises(ValueError):
            SecretBox(OLD.encode()).open(resealed)
        assert "5,000.00 USD" in (await after.send("/balance"))[0].text  # the live account still answers
        auth = create_web_app(after.app, after.bot)[MINIAPP].auth
        assert auth.verify_link_token(link).id == 1001
        with pytest.raises(Unauthorized):
            auth.verify_link_token(expired)
        assert WebAuth(TOKEN, NEW.encode()).verify_link_token(auth.issue_link_token(1001)).id == 1001
        with pytest.raises(Unauthorized):  # new links are signed with the new key only
            WebAuth(TOKEN, OLD.encode()).verify_link_token(auth.issue_link_token(1001))
    finally:
        await after.close()

    # once the old key is dropped, the re-sealed credential still opens
    final = await build_harness(stack.model_copy(update={"secret_key": SecretStr(NEW)}), telegram, limiter=Unlimited())
    try:
        final.app.market.hub.use_clock(clock)
        assert "5,000.00 USD" in (await final.send("/balance"))[0].text
    finally:
        await final.close()


def test_secret_key_lists_in_both_spellings(tmp_path: object) -> None:
    one = Settings(secret_key=f" {NEW} , {OLD} ,", data_dir=tmp_path)
    two = Settings(secret_key=NEW, secret_key_old=f"{OLD},{NEW}", data_dir=tmp_path)
    assert one.secrets() == two.secrets() == (NEW.encode(), OLD.encode())
    assert one.secret() == NEW.encode()
