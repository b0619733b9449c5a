"""Trading: per-user accounts (demo on the simulated terminal, linked live MT5), risk limits,
previewed and idempotently confirmed orders, price alerts, and the market hub that serves quotes
and charts. No aiogram here."""
