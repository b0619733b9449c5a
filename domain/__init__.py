"""The business of Hybrid Trader. Nothing in this package imports aiogram.

Services take a unit of work (repositories) and gateways, and return plain
dataclasses. The bot (``handlers/``) and the workers (``workers/``) both call
these services.
"""
