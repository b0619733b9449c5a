"""Credentials are scrubbed where a log line or a Sentry event could carry them."""

from __future__ import annotations

from bot.errors import SCRUBBED, scrub, scrub_tree
from bot.observability import scrub_breadcrumb, tag_event

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_bot_api_urls_in_breadcrumbs_lose_the_token() -> None:
    crumb = {"type": "http", "category": "httplib", "data": {"url": f"https://api.telegram.org/bot{TOKEN}/sendMessage"}}
    scrubbed = scrub_breadcrumb(crumb, {})
    assert scrubbed is not None and TOKEN.split(":")[1] not in str(scrubbed)
    assert scrubbed["data"]["url"] == "https://api.telegram.org/bot123456789:[token]/sendMessage"
    file_crumb = scrub_breadcrumb({"message": f"GET /file/bot{TOKEN}/photos/1.jpg", "data": {}}, {})
    assert file_crumb is not None and TOKEN.split(":")[1] not in file_crumb["message"]


def test_credential_headers_of_a_web_request_are_filtered() -> None:
    event = {"request": {"url": "https://bot.example.com/webhooks/telegram", "headers": {
        "X-Telegram-Bot-Api-Secret-Token": "webhook-secret", "Stripe-Signature": "t=1,v1=abc",
        "Authorization": "Bearer x", "Content-Type": "application/json"}}}  # fmt: skip
    tagged = tag_event(event, {})
    headers = tagged["request"]["headers"]
    assert "webhook-secret" not in str(tagged) and "v1=abc" not in str(tagged) and "Bearer" not in str(tagged)
    assert headers["Content-Type"] == "application/json"


def test_secrets_are_scrubbed_from_text_and_nested_events() -> None:
    assert scrub("login 5 with password hunter2!", ["hunter2!"]) == f"login 5 with password {SCRUBBED}"
    event = {"exception": {"values": [{"value": "bad hunter2!", "frames": [("hunter2!", 1)]}]}, "hunter2!": 1}
    assert "hunter2!" not in str(scrub_tree(event, ["hunter2!"]))
