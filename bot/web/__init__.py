"""The aiohttp web server: Telegram webhook, health check (and, later, Stripe and the Mini App)."""
