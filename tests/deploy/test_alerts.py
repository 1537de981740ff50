"""The alert rules: ``promtool check rules``, ``promtool test rules``, runbooks, metric names.

promtool comes from Debian's ``prometheus`` package (installed by ``.ci/run``). The rule
tests in ``deploy/prometheus/rules/prodcat-alerts.test.yml`` give each expected alert its
labels and summary; the description and runbook are copied from the rule here, so the
runbook text lives in one place.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.test_dashboard import EXPECTED_METRICS, metric_names_in

REPO_ROOT = Path(__file__).resolve().parents[2]
RULES_DIR = REPO_ROOT / "deploy" / "prometheus" / "rules"
RULES = RULES_DIR / "prodcat-alerts.yml"
RULE_TESTS = RULES_DIR / "prodcat-alerts.test.yml"
PROMETHEUS_CONFIG = REPO_ROOT / "deploy" / "prometheus" / "prometheus.yml"
# What the issue asks alerts for, by the alert that covers it.
REQUIRED_ALERTS = {
    "ProdcatConsumerLagGrowing",  # lag growing
    "ProdcatNoOutputWhileInputArrives",  # no output while input arrives
    "ProdcatDeadLetterRateHigh",  # dead-letter rate
    "ProdcatModelLoadFailing",  # model load or verification failure
    "ProdcatRedisErrors",  # Redis errors
    "ProdcatAcceptanceDroppedAfterModelChange",  # acceptance rate dropping after a model change
}
TEMPLATE = re.compile(r"\{\{")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool not found: install Debian's prometheus package "
            "(apt-get install prometheus; .ci/run does it)",
            pytrace=False,
        )
    return found


def _rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(RULES.read_text(encoding="utf-8"))
    return [rule for group in data["groups"] for rule in group["rules"]]


def _alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in _rules() if "alert" in rule}


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )


def test_promtool_checks_the_rules() -> None:
    result = _run("check", "rules", str(RULES), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout


def test_promtool_checks_the_prometheus_config() -> None:
    """The compose Prometheus config, with its rule_files, is valid for the real server."""
    result = _run("check", "config", str(PROMETHEUS_CONFIG), cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    rule_files = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))["rule_files"]
    loaded = [(PROMETHEUS_CONFIG.parent / pattern).resolve() for pattern in rule_files]
    assert RULES.resolve() in loaded, "prometheus.yml does not load the alert rules"


def test_every_required_alert_exists_with_runbook() -> None:
    alerts = _alerts()
    assert set(alerts) >= REQUIRED_ALERTS
    for name, rule in alerts.items():
        annotations = rule.get("annotations", {})
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{name}: no {key} annotation"
        # The rule tests copy these two verbatim, so they must be plain text.
        assert not TEMPLATE.search(annotations["description"] + annotations["runbook"]), name
        assert len(annotations["runbook"]) > 120, f"{name}: the runbook says too little"
        assert rule["labels"]["severity"] in {"warning", "critical"}, name


def test_alerts_only_use_declared_metrics() -> None:
    """Rules name metrics the workers export, or the declared lifecycle/feedback ones."""
    declared = {name for names in EXPECTED_METRICS.values() for name in names}
    for name, rule in _alerts().items():
        used = metric_names_in(rule["expr"])
        assert used, f"{name}: no prodcat metric in its expression"
        assert used <= declared, f"{name}: undeclared metrics {sorted(used - declared)}"


def _completed_rule_tests(rules_path: Path) -> dict[str, Any]:
    """The rule tests with every expected alert's description and runbook filled in."""
    tests = yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))
    tests["rule_files"] = [str(rules_path)]
    alerts = _alerts()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            annotations = alerts[check["alertname"]]["annotations"]
            for expected in check.get("exp_alerts") or []:
                given = expected.setdefault("exp_annotations", {})
                given.setdefault("description", annotations["description"])
                given.setdefault("runbook", annotations["runbook"])
    return tests


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    fired: set[str] = set()
    quiet: set[str] = set()
    for case in yaml.safe_load(RULE_TESTS.read_text(encoding="utf-8"))["tests"]:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fired == set(_alerts()), f"no firing case: {set(_alerts()) - fired}"
    assert quiet == set(_alerts()), f"no quiet case: {set(_alerts()) - quiet}"


def test_promtool_rule_unit_tests_pass(tmp_path: Path) -> None:
    completed = tmp_path / "prodcat-alerts.test.yml"
    completed.write_text(yaml.safe_dump(_completed_rule_tests(RULES), sort_keys=False))
    result = _run("test", "rules", str(completed), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "SUCCESS" in result.stdout


def test_a_wrong_expectation_fails_promtool(tmp_path: Path) -> None:
    """The harness can fail: a rule test expecting a different summary is reported."""
    tests = _completed_rule_tests(RULES)
    check = next(
        c for case in tests["tests"] for c in case["alert_rule_test"] if c.get("exp_alerts")
    )
    check["exp_alerts"][0]["exp_annotations"]["summary"] = "something else"
    broken = tmp_path / "broken.test.yml"
    broken.write_text(yaml.safe_dump(tests, sort_keys=False))
    result = _run("test", "rules", str(broken), cwd=tmp_path)
    assert result.returncode != 0
    assert "something else" in result.stdout + result.stderr
