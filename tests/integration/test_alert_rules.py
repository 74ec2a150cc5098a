"""The Prometheus alert rules: valid, unit-tested by promtool for every alert, and each with a runbook.

promtool comes from Debian's `prometheus` package via scripts/install-prometheus.sh; if it cannot
be installed the test fails (an untested alert is worse than none).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
OPERATIONS = ROOT / "docs" / "operations.md"


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        result = subprocess.run(
            ["bash", str(ROOT / "scripts" / "install-prometheus.sh")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        found = shutil.which("promtool")
        if found is None:
            pytest.fail(
                f"promtool missing and scripts/install-prometheus.sh failed:\n{result.stdout}\n{result.stderr}"
            )
    return found


def alerts() -> list[dict[str, Any]]:
    document = yaml.safe_load(RULES.read_text())
    return [rule for group in document["groups"] for rule in group["rules"] if "alert" in rule]


def test_promtool_check_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_test_rules(promtool: str) -> None:
    result = subprocess.run(
        [promtool, "test", "rules", str(RULE_TESTS)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=RULE_TESTS.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_is_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    names = [rule["alert"] for rule in alerts()]
    assert len(names) == len(set(names))
    for name in names:
        assert cases.get(name) == {True, False}, f"{name}: needs a firing and a non-firing case"
    assert set(cases) <= set(names), f"tests for unknown alerts: {set(cases) - set(names)}"


def test_every_alert_links_a_runbook_heading_in_operations_md() -> None:
    headings = {
        re.sub(r"[^a-z0-9 _-]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
        for line in OPERATIONS.read_text().splitlines()
        if line.startswith("#")
    }
    for rule in alerts():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page == "docs/operations.md", url
        assert anchor == rule["alert"].lower() and anchor in headings, (
            f"{rule['alert']}: no heading for {url}"
        )
        assert rule["labels"]["severity"] in {"warning", "critical"}
