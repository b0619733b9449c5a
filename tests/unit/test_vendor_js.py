"""The vendored JavaScript is byte for byte the pinned npm release (scripts/vendor_js.py re-fetches and verifies)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "bot" / "web" / "static" / "vendor" / "vendor.json"


def test_every_vendored_file_matches_its_pinned_sha256() -> None:
    files = json.loads(MANIFEST.read_text())["files"]
    assert {f["package"] for f in files} == {"lightweight-charts", "axe-core"}
    for item in files:
        path = ROOT / item["dest"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == item["sha256"], item["dest"]


def test_the_chart_library_is_the_pinned_release_with_its_license() -> None:
    vendor = ROOT / "bot" / "web" / "static" / "vendor"
    head = (vendor / "lightweight-charts.standalone.production.js").read_text()[:300]
    assert "Lightweight Charts™ v5.2.1" in head and "Apache License 2.0" in head
    assert "Apache License" in (vendor / "lightweight-charts.LICENSE").read_text()
    assert "TradingView" in (vendor / "NOTICE").read_text()
    # served by the app and installed with it (package data), never fetched from another origin
    assert '"static/vendor/*"' in (ROOT / "pyproject.toml").read_text()
