"""The shipped alerts and dashboard checked by the real promtool, run as a process: the plain
rules file passes `promtool check rules`, every alert's firing and silent cases (from
tests/unit/test_monitoring_rules.py) pass `promtool test rules`, and every dashboard expression
parses."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from metallb_py.monitoring import dashboard, files, rules
from tests.unit.test_monitoring_rules import CASES, MONITORING

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        if IN_CI:
            pytest.fail(
                "promtool missing (Debian package prometheus; scripts/setup.sh installs it)"
            )
        pytest.skip("promtool missing (apt-get install prometheus)")
    return path


def run_promtool(*args: str) -> str:
    out = subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def expand(template: str, labels: dict[str, str]) -> str:
    return re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels.get(m.group(1), ""), template)


def expected_alert(rule: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    return {
        "exp_labels": {**labels, **rule["labels"]},
        "exp_annotations": {k: expand(v, labels) for k, v in rule["annotations"].items()},
    }


def promtool_tests(rules_file: Path) -> dict[str, Any]:
    by_name = {r["alert"]: r for g in rules.groups() for r in g["rules"]}
    tests = []
    for name, (firing, silent, labels, at) in CASES.items():
        rule = by_name[name]
        tests.append(
            {
                "name": f"{name} fires",
                "interval": "1m",
                "input_series": firing,
                "alert_rule_test": [
                    # Not yet: the condition has held for less than `for:`.
                    {"eval_time": "0m", "alertname": name, "exp_alerts": []},
                    {
                        "eval_time": at,
                        "alertname": name,
                        "exp_alerts": [expected_alert(rule, labels)],
                    },
                ],
            }
        )
        tests.append(
            {
                "name": f"{name} stays silent",
                "interval": "1m",
                "input_series": silent,
                "alert_rule_test": [{"eval_time": at, "alertname": name, "exp_alerts": []}],
            }
        )
    return {"rule_files": [str(rules_file)], "evaluation_interval": "1m", "tests": tests}


def test_promtool_checks_the_plain_rules_file() -> None:
    out = run_promtool("check", "rules", str(MONITORING / files.RULES_FILE))
    assert f"SUCCESS: {len(rules.alert_names())} rules found" in out


def test_promtool_unit_tests(tmp_path: Path) -> None:
    test_file = tmp_path / "metallb-rules.test.yml"
    test_file.write_text(yaml.safe_dump(promtool_tests(MONITORING / files.RULES_FILE)))
    out = run_promtool("test", "rules", str(test_file))
    assert "SUCCESS" in out


def test_dashboard_expressions_parse(tmp_path: Path) -> None:
    exprs = [e.replace("$__rate_interval", "5m") for e in dashboard.expressions()]
    doc = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump(doc))
    out = run_promtool("check", "rules", str(path))
    assert f"SUCCESS: {len(exprs)} rules found" in out
