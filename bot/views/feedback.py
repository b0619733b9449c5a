"""/feedback: rating, comment, feature requests."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.utils.i18n import gettext as _

from bot.callbacks import CallbackInt
from bot.views import View
from bot.views.common import Button, keyboard
from domain.support.feedback import Feedback, Kind


class FeedbackCB(CallbackData, prefix="fb"):
    action: str  # rate, request, skip
    value: CallbackInt = 0


def feedback_home() -> View:
    text = "\n".join(
        [_("<b>💬 Feedback</b>"), _("How do you like Hybrid Trader? Rate it from 1 to 5, or suggest a feature.")]
    )
    buttons: list[Button] = [("⭐" * n, FeedbackCB(action="rate", value=n)) for n in range(1, 6)]
    buttons.append((_("💡 Suggest a feature"), FeedbackCB(action="request")))
    return text, keyboard(buttons, [5, 1])


def comment_prompt(rating: int) -> View:
    text = _("You rated {stars}. Anything to add? Send a comment, or skip.").format(stars="⭐" * rating)
    return text, keyboard([(_("Skip"), FeedbackCB(action="skip"))])


def request_prompt() -> str:
    return _("Describe the feature you'd like in one message. /cancel to stop.")


def thanks(item: Feedback) -> str:
    if item.kind == Kind.REQUEST:
        return _("🙏 Thank you! Your suggestion is recorded and our team reads every one.")
    return _("🙏 Thank you for your rating! It helps us improve.")
