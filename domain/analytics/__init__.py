"""Performance analytics: pure metrics (metrics.py) and the per-user report service (service.py)."""

from domain.analytics.metrics import Metrics, Period, SymbolStats
from domain.analytics.service import AnalyticsService, PerformanceReport, Portfolio

__all__ = ["AnalyticsService", "Metrics", "PerformanceReport", "Period", "Portfolio", "SymbolStats"]
