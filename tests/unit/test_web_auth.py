"""Web view authentication (Telegram initData, signed links) and the live-tick fan-out, without a server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from urllib.parse import parse_qsl, quote, urlencode

import pytest

from bot.web.auth import Unauthorized, WebAuth, sign_init_data
from bot.web.miniapp import LiveTicks, thin, weights_over_time, ws_frame
from domain.market.models import Tick
from domain.market.tickbus import InProcessTickBus

TOKEN = "123456:TEST-token"
NOW = 1_800_000_000.0


def auth(**kwargs: object) -> WebAuth:
    return WebAuth(TOKEN, b"secret-key", clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def init_data(user_id: int = 42, *, age: float = 0, token: str = TOKEN, **extra: object) -> str:
    fields = {"auth_date": int(NOW - age), "query_id": "AAHdF6IQ", "user": {"id": user_id, "first_name": "Ann",
              "language_code": "ru"}, **extra}  # fmt: skip
    return sign_init_data(token, fields)


def test_init_data_signed_per_telegrams_spec_is_accepted() -> None:
    # built here independently of sign_init_data, straight from Telegram's description
    user = json.dumps({"id": 7, "first_name": "Ann", "language_code": "es"})
    fields = {"query_id": "Q1", "user": user, "auth_date": str(int(NOW) - 10)}
    check = "\n".join(f"{k}={fields[k]}" for k in sorted(fields)).encode()
    secret = hmac.new(b"WebAppData", TOKEN.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check, hashlib.sha256).hexdigest()
    who = auth().verify_init_data(urlencode(fields))
    assert (who.id, who.first_name, who.language, who.via) == (7, "Ann", "es", "init_data")
    assert auth().authenticate("tma " + urlencode(fields)).id == 7
    assert auth().authenticate("TMA  " + urlencode(fields)).id == 7


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "not a query string",
        init_data(age=3601),  # older than one hour
        init_data(age=-3600),  # from the future
        init_data(token="999:another-bot"),
        init_data().replace("hash=", "hash=00"),
        init_data().replace(quote('"id":42'), quote('"id":43')),  # another user, same hash
        init_data() + "&auth_date=" + str(int(NOW)),  # a repeated field
        init_data() + "&extra=1",  # an unsigned field added
        sign_init_data(TOKEN, {"auth_date": int(NOW)}),  # no user
        sign_init_data(TOKEN, {"auth_date": int(NOW), "user": {"id": -5}}),
        sign_init_data(TOKEN, {"user": {"id": 5}}),  # no auth_date
        sign_init_data(TOKEN, {"auth_date": "soon", "user": {"id": 5}}),
        "x" * 5000,
    ],
)
def test_bad_init_data_is_refused(raw: str) -> None:
    with pytest.raises(Unauthorized):
        auth().verify_init_data(raw)


def test_the_hour_boundary_and_the_hash_cover_every_field() -> None:
    assert auth().verify_init_data(init_data(age=3599)).id == 42
    fields = dict(parse_qsl(init_data(start_param="x")))
    fields["start_param"] = "y"
    with pytest.raises(Unauthorized):
        auth().verify_init_data(urlencode(fields))
    with pytest.raises(Unauthorized):
        WebAuth("", b"secret").verify_init_data(init_data())  # no bot token: nothing can be checked


def test_link_tokens_expire_and_cannot_be_forged() -> None:
    clock = [NOW]
    issuer = WebAuth(TOKEN, b"secret-key", clock=lambda: clock[0], link_ttl=600)
    token = issuer.issue_link_token(42)
    assert issuer.verify_link_token(token).id == 42
    assert issuer.authenticate("link " + token).via == "link"
    assert issuer.link("https://bot.example/", 42, "chart").startswith("https://bot.example/app/chart?t=")
    body, mac = token.split(".")
    forged_body = body[:-2] + ("A" if body[-2] != "A" else "B") + body[-1]
    for bad in (forged_body + "." + mac, body + "." + mac[::-1], body, "", "a.b.c", "!!.??", token + "x"):
        with pytest.raises(Unauthorized):
            issuer.verify_link_token(bad)
    with pytest.raises(Unauthorized):
        WebAuth(TOKEN, b"another-secret", clock=lambda: clock[0]).verify_link_token(token)
    clock[0] += 600
    with pytest.raises(Unauthorized):
        issuer.verify_link_token(token)
    for header in (None, "", "Bearer " + token, "link", "tma"):
        with pytest.raises(Unauthorized):
            issuer.authenticate(header)


def test_thin_keeps_ends_and_extremes() -> None:
    points = [(i, float((i * 7919) % 1000)) for i in range(10_000)]
    points[5000] = (5000, -50.0)
    points[7777] = (7777, 5000.0)
    out = thin(points, 500)
    assert 400 <= len(out) <= 520
    assert out[0] == points[0] and out[-1] == points[-1]
    assert (5000, -50.0) in out and (7777, 5000.0) in out
    assert [t for t, _ in out] == sorted(t for t, _ in out)
    assert thin(points[:10], 500) == points[:10]


def test_weights_over_time_hold_until_the_next_update() -> None:
    class P:
        def __init__(self, agent: str, time: int, weight: float) -> None:
            self.agent, self.time, self._w = agent, time, weight

        def stats(self) -> object:
            return type("S", (), {"weight": self._w})()

    out = weights_over_time([P("trend", 10, 0.1), P("momentum", 20, -0.2), P("trend", 30, 0.3)])
    assert out == {"t": [10, 20, 30], "agents": {"momentum": [0.0, -0.2, -0.2], "trend": [0.1, 0.1, 0.3]}}


class FakeSocket:
    """A page's transport: records frames; ``backlog`` stands for bytes the browser has not read yet."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.backlog = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.frames.append(data)

    def get_write_buffer_size(self) -> int:
        return self.backlog

    def is_closing(self) -> bool:
        return self.closing

    def messages(self) -> list[dict]:  # type: ignore[type-arg]
        out = []
        for frame in self.frames:
            assert frame[0] == 0x81  # one final text frame each, unmasked (server to client)
            n, head = (frame[1], 2) if frame[1] < 126 else (int.from_bytes(frame[2:4], "big"), 4)
            assert len(frame) == head + n
            out.append(json.loads(frame[head:]))
        return out


async def _turns(n: int = 3) -> None:
    for _ in range(n):
        await asyncio.sleep(0)


async def test_a_slow_connection_keeps_only_the_latest_tick_and_never_blocks_the_bus() -> None:
    bus = InProcessTickBus()
    watched: list[set[str]] = []
    live = LiveTicks(bus, lambda symbols: watched.append(set(symbols)))
    sockets = {name: FakeSocket() for name in ("fast", "slow", "other")}
    fast, slow, other = (live.open(sockets[name]) for name in ("fast", "slow", "other"))
    live.watch(fast, ["EURUSD"])
    live.watch(slow, ["EURUSD", "XAUUSD"])
    live.watch(other, ["USDJPY"])
    assert live.symbols == ["EURUSD", "USDJPY", "XAUUSD"] and {"EURUSD", "XAUUSD"} in watched
    tasks = [asyncio.create_task(conn.pump()) for conn in (fast, slow, other)]
    bus.publish(Tick("EURUSD", 1, 1.0, 1.1))
    await _turns()
    assert [m["ticks"] for m in sockets["fast"].messages()] == [[{"s": "EURUSD", "t": 1, "b": 1.0, "a": 1.1}]]
    assert sockets["slow"].messages() == sockets["fast"].messages()  # the same frame for every page
    sockets["slow"].backlog = 10**6  # a browser that stopped reading
    for i in range(2, 5002):  # 5,000 ticks while the slow page reads nothing: publish never waits
        bus.publish(Tick("EURUSD", i, 1.0 + i, 1.1 + i))
        bus.publish(Tick("XAUUSD", i, 2000.0 + i, 2000.5 + i))
        if i % 1000 == 0:
            await _turns()
    await _turns()
    assert len(slow._slot) == 2 and len(sockets["slow"].frames) == 1  # one pending tick per symbol, not a queue
    assert sockets["fast"].messages()[-1]["ticks"][-1]["t"] == 5001  # the fast page is not held back
    sockets["slow"].backlog = 0  # it reads again: only the latest of each symbol arrives
    for _ in range(20):
        await asyncio.sleep(0.01)
        if len(sockets["slow"].frames) == 3:
            break
    last = [t for m in sockets["slow"].messages()[1:] for t in m["ticks"]]
    assert {t["s"]: t["t"] for t in last} == {"EURUSD": 5001, "XAUUSD": 5001}
    assert slow.sent == 3 and slow.sent + slow.skipped == 1 + 2 * 5000
    assert fast.sent + fast.skipped == 5001
    assert other.sent == 0 and sockets["other"].frames == []  # USDJPY never ticked
    sockets["fast"].closing = True  # a page gone mid-stream is written to no more
    bus.publish(Tick("EURUSD", 6000, 1.0, 1.1))
    await _turns()
    assert sockets["fast"].messages()[-1]["ticks"][-1]["t"] == 5001
    for conn in (fast, slow, other):
        live.drop(conn)
    await asyncio.gather(*tasks)  # a dropped connection's pump ends
    assert live.symbols == [] and live.connections == 0
    await live.close()
    assert bus._listeners == ()  # the page listener left the bus


def test_ws_frames_carry_any_length() -> None:
    for n in (0, 125, 126, 65_535, 65_536):
        frame = ws_frame("x" * n)
        head = 2 if n < 126 else 4 if n < 65_536 else 10
        assert frame[0] == 0x81 and len(frame) == head + n and frame[head:] == b"x" * n
        assert frame[1] == (n if n < 126 else 126 if n < 65_536 else 127)  # no mask bit from a server


def test_report_values_become_plain_json() -> None:
    from dataclasses import dataclass
    from datetime import UTC, datetime

    from bot.web.miniapp import _dumps, _plain
    from domain.market.models import Side

    @dataclass(frozen=True)
    class Row:
        name: str
        ratio: float
        worst: float
        side: Side
        at: datetime
        items: tuple[float, ...]

    row = Row("EURUSD", 1.23456789, float("inf"), Side.BUY, datetime(2026, 1, 1, tzinfo=UTC), (float("nan"), 2.0))
    assert json.loads(_dumps(_plain([row]))) == [
        {"name": "EURUSD", "ratio": 1.234568, "worst": None, "side": "buy", "at": 1767225600, "items": [None, 2.0]}
    ]


@pytest.mark.parametrize("forged", ["é" * 64, "ff" * 31 + "€", "ÿ" * 64, "０" * 64])
def test_non_ascii_hash_is_refused_not_crashed(forged: str) -> None:
    """A 500 and a Sentry event per forged request before: hmac.compare_digest refuses non-ASCII str."""
    good = init_data()
    body = good.rsplit("hash=", 1)[0] + "hash=" + quote(forged)
    with pytest.raises(Unauthorized):
        auth().authenticate("tma " + body)
    with pytest.raises(Unauthorized):
        auth().authenticate("link " + forged + "." + forged)
