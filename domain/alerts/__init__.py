"""Price alerts: rules, the tick-by-tick index, and the evaluator that persists firings."""

from domain.alerts.index import AlertIndex
from domain.alerts.models import AlertFired, AlertKind, AlertRule, AlertStatus, Direction, InvalidAlertRule
from domain.alerts.service import AlertEvaluator, AlertRepository, Notifier

__all__ = [
    "AlertEvaluator",
    "AlertFired",
    "AlertIndex",
    "AlertKind",
    "AlertRepository",
    "AlertRule",
    "AlertStatus",
    "Direction",
    "InvalidAlertRule",
    "Notifier",
]
