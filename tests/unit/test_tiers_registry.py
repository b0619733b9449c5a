from aiogram import Router

from bot.i18n import N_
from bot.registry import Category, Command, Registry
from domain.tiers import Feature, Quota, Tier, TierCatalog

import pytest


def catalog() -> TierCatalog:
    q = {Quota.ALERTS: 1, Quota.AI_PER_DAY: 1, Quota.WATCHLIST: 1}
    return TierCatalog(
        [
            Tier("pro", 2, 2999, 1500, 120, 30, q, frozenset({Feature.CHARTS, Feature.AUTO_TRADING})),
            Tier("free", 0, 0, 0, 30, 10, q, frozenset({Feature.CHARTS})),
            Tier("basic", 1, 999, 500, 60, 15, q, frozenset({Feature.CHARTS, Feature.LIVE_TRADING})),
        ]
    )


def test_catalog_orders_by_rank_and_falls_back_to_free() -> None:
    tiers = catalog()
    assert [t.code for t in tiers] == ["free", "basic", "pro"]
    assert tiers.get("no-such-tier").code == "free"
    assert tiers.required_for(min_tier=None, feature=Feature.AUTO_TRADING).code == "pro"  # type: ignore[union-attr]
    assert tiers.required_for(min_tier=None, feature=Feature.MULTI_ACCOUNT) is None


def test_requirements_combine_min_tier_and_feature() -> None:
    tiers = catalog()
    free, basic, pro = tiers.get("free"), tiers.get("basic"), tiers.get("pro")
    assert tiers.allows(free, min_tier=None, feature=None)
    assert not tiers.allows(free, min_tier="basic", feature=None)
    assert tiers.allows(pro, min_tier="basic", feature=None)
    # LIVE_TRADING exists only on basic here: pro lacks it although it ranks higher.
    assert not tiers.allows(pro, min_tier=None, feature=Feature.LIVE_TRADING)
    assert tiers.required_for(min_tier="basic", feature=Feature.AUTO_TRADING) is pro
    assert tiers.required_for(min_tier=None, feature=Feature.LIVE_TRADING) is basic


def test_catalog_requires_free() -> None:
    with pytest.raises(ValueError):
        TierCatalog([catalog().get("pro")])


def _router() -> Router:
    return Router()


def _other() -> Router:
    return Router()


def test_registry_parses_commands_and_callbacks() -> None:
    registry = Registry(
        [
            Command("start", _router, N_("Main menu"), Category.CORE),
            Command("trade", _other, N_("Trade"), Category.TRADING, min_tier="basic", callbacks=("tr",)),
        ]
    )
    assert registry.for_text("/trade buy EURUSD").name == "trade"  # type: ignore[union-attr]
    assert registry.for_text("/TRADE@hybrid_bot").name == "trade"  # type: ignore[union-attr]
    assert registry.for_text("/nope") is None
    assert registry.for_text("trade") is None
    assert registry.for_text("/") is None
    assert registry.for_callback("tr:confirm:5").name == "trade"  # type: ignore[union-attr]
    assert registry.for_callback("menu:trade").name == "trade"  # type: ignore[union-attr]
    assert registry.for_callback("zz:1") is None
    assert len(registry.routers()) == 2


def test_registry_rejects_duplicates() -> None:
    with pytest.raises(ValueError):
        Registry([Command("a", _router, "x", Category.CORE), Command("a", _router, "y", Category.CORE)])
    with pytest.raises(ValueError):
        Registry(
            [
                Command("a", _router, "x", Category.CORE, callbacks=("p",)),
                Command("b", _router, "y", Category.CORE, callbacks=("p",)),
            ]
        )
