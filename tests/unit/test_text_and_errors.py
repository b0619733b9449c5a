from aiogram.utils.i18n import I18n

from bot.errors import Report, dna, user_message
from bot.i18n import LOCALES_DIR
from bot.outgoing import LIMIT, split_html, visible_length
from domain.errors import InvalidInput, QuotaExceeded


def _boom_a() -> None:
    raise KeyError("a")


def _boom_b() -> None:
    raise KeyError("b")


def _code(fn) -> str:  # type: ignore[no-untyped-def]
    try:
        fn()
    except Exception as exc:
        return dna(exc)
    raise AssertionError("did not raise")


def test_dna_is_stable_per_site_and_differs_between_sites() -> None:
    assert _code(_boom_a) == _code(_boom_a)
    assert _code(_boom_a) != _code(_boom_b)
    assert _code(_boom_a).startswith("BUG-")
    assert dna(InvalidInput("x")) == "INP-INVALID"


def test_user_message_is_localized_with_code_and_ref() -> None:
    i18n = I18n(path=LOCALES_DIR)
    report = Report("TIER-QUOTA", "AB12CD34", expected=True)
    with i18n.context(), i18n.use_locale("es"):
        text = user_message(report, {"limit": 3, "quota": "x"})
    assert "Código TIER-QUOTA" in text and "AB12CD34" in text and "3" in text
    with i18n.context(), i18n.use_locale("ru"):
        generic = user_message(Report("BUG-ABCDEF", "FF00FF00", expected=False))
    assert "Код BUG-ABCDEF" in generic and "FF00FF00" in generic
    assert QuotaExceeded.code == "TIER-QUOTA"


def test_split_keeps_every_character_and_balances_tags() -> None:
    text = "<b>Report</b>\n" + "\n".join(f"row {i}: <i>a &amp; b</i> <code>{i * 7}</code>" for i in range(900))
    parts = split_html(text)
    assert len(parts) > 1
    assert all(visible_length(p) <= LIMIT for p in parts)
    for part in parts:
        for tag in ("b", "i", "code"):
            assert part.count(f"<{tag}>") == part.count(f"</{tag}>")
    joined = "\n".join(parts)
    assert all(f"row {i}:" in joined for i in range(900))


def test_split_cuts_a_single_huge_line() -> None:
    parts = split_html("<b>" + "x" * 9000 + "</b>")
    assert [visible_length(p) for p in parts] == [4096, 4096, 808]
    assert all(p.startswith("<b>") and p.endswith("</b>") for p in parts)


def test_short_text_is_untouched() -> None:
    assert split_html("<b>hi</b> &amp; bye") == ["<b>hi</b> &amp; bye"]


async def test_response_models_survive_garbage_collection() -> None:
    """pydantic caches Response[T] weakly; without the pin every Bot API reply rebuilt it (~12 ms each)."""
    import gc
    import weakref

    from aiogram.methods import GetUserChatBoosts, Response

    from bot.outgoing import PinResponseModels

    method = GetUserChatBoosts(chat_id=1, user_id=1)  # a return type nothing else in the suite uses

    async def make_request(bot: object, m: GetUserChatBoosts) -> None:
        return None

    unpinned = weakref.ref(Response[method.__returning__])
    gc.collect()
    assert unpinned() is None  # what happened on every call before the pin
    pin = PinResponseModels()  # lives as long as the bot session
    await pin(make_request, None, method)  # type: ignore[arg-type]
    pinned = weakref.ref(Response[method.__returning__])
    gc.collect()
    assert pinned() is not None and Response[method.__returning__] is pinned()
