"""Hybrid Trader's composition root: settings, CLI, app factory, middlewares, web, console."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("hybrid-trader")
except PackageNotFoundError:  # running from a source tree without installing
    __version__ = "0.0.0+source"
