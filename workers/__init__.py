"""Long-running jobs. They call the same domain services as the handlers and never import handlers.

- ``market_feed``: polls watched symbols into the tick bus (bars, the alert evaluator listen there).
- ``alert_delivery``: a fired alert's trigger and its message are one transaction into the outbox.
- ``alert_sync``: rule changes made in a bot replica reach the worker's evaluator (Redis pub/sub).
- ``agent_runner``: votes, consensus, signals and digests on each closed bar.
- ``scheduler``: periodic jobs (billing, outbox recovery, data retention) behind one leader lease.
- ``outbox``: the sender of the notification outbox (every proactive message), paced under Telegram's limits.
- ``broadcast``: the broadcast sender (its own per-recipient outbox), sharing the outbox's global rate.
- ``trading_runtime``: composes the market side for one process.

``python -m bot run`` runs them in-process; with WORKERS=external only ``python -m bot worker`` does
(bot/worker.py), and bot replicas just queue proactive messages.
"""
