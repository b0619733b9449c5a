"""Market domain: vocabulary, the TradingGateway contract and its backends.

``make_gateway(backend, ...)`` builds the configured backend (``sim``,
``native``, ``rpyc``); backends are imported only when chosen, so neither
``MetaTrader5`` nor ``rpyc`` is needed to import this package.
"""

from domain.market.errors import (
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    InvalidSymbolName,
    UnknownSymbol,
)
from domain.market.factory import BACKENDS, make_gateway
from domain.market.gateway import OrderAction, OrderRequest, TradingGateway

__all__ = [
    "BACKENDS",
    "GatewayError",
    "GatewayTimeout",
    "GatewayUnavailable",
    "InvalidSymbolName",
    "OrderAction",
    "OrderRequest",
    "TradingGateway",
    "UnknownSymbol",
    "make_gateway",
]
