"""Subscriptions and payments on every rail (Stripe, Telegram Stars, trials, referral rewards).

Each user's plan is derived from their subscriptions: the highest tier any of
them currently grants becomes ``users.tier`` / ``tier_expires_at``, written in
the same transaction as the subscription change (see :mod:`domain.billing.service`).
"""
