"""Alert rules: promtool's own tests pass (and can fail), every alert is documented and
labelled, and every metric a rule reads is one the worker or the pager exports."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from hito.ops.pager.pages import PageLog
from hito.ops.pager.server import Pager
from hito.pipeline.metrics import PipelineMetrics
from hito.settings import REPO_ROOT
from tests.unit.infra.tools import tool

PROM = REPO_ROOT / "infra" / "prometheus"
RULE_TESTS = PROM / "tests" / "hito_test.yml"
SPEC_ALERTS = {"CheckpointSurge", "DeviceSilent", "DlqRateHigh", "SinkFailing", "WorkerDown"}
ALERT_PATH = {"Watchdog", "PagerForwardFailing", "PagerForwardUnset"}
# Fires for as long as Prometheus runs: it has no silent case to test (the pager catches its
# silence), and severity "none" (it is a heartbeat, never a page).
ALWAYS_FIRING = {"Watchdog"}
RUNBOOK = "{{{{ $externalLabels.runbook_base }}}}/{}.md"


def _promtool(*args: str, cwd: Path = PROM) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("promtool"), *args], capture_output=True, text=True, cwd=cwd)


def _rules() -> list[dict[str, object]]:
    return [
        rule
        for path in sorted((PROM / "rules").glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def test_promtool_checks_and_tests_the_rules() -> None:
    check = _promtool("check", "rules", *map(str, sorted((PROM / "rules").glob("*.yml"))))
    assert check.returncode == 0, check.stdout + check.stderr
    result = _promtool("test", "rules", str(RULE_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_rule_tests_can_fail(tmp_path: Path) -> None:
    """Expecting the surge at the wrong site must make promtool fail."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules").symlink_to(PROM / "rules")
    text = RULE_TESTS.read_text()
    wrong = text.replace(
        "{severity: critical, site: chacalluta, direction: entry}",
        "{severity: critical, site: santa-rosa, direction: entry}",
    )
    assert wrong != text
    (tmp_path / "tests" / "hito_test.yml").write_text(wrong)
    result = _promtool("test", "rules", "tests/hito_test.yml", cwd=tmp_path)
    assert result.returncode != 0


def test_every_spec_alert_exists_with_severity_summary_and_a_runbook() -> None:
    alerts = [r for r in _rules() if "alert" in r]
    assert {r["alert"] for r in alerts} >= SPEC_ALERTS | ALERT_PATH
    for rule in alerts:
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and isinstance(notes, dict)
        allowed = {"none"} if rule["alert"] in ALWAYS_FIRING else {"critical", "warning"}
        assert labels["severity"] in allowed, rule["alert"]
        assert notes["summary"], rule["alert"]
        # A URL under the configured base (the external label runbook_base), never a path.
        assert notes["runbook_url"] == RUNBOOK.format(rule["alert"]), rule["alert"]
        runbook = REPO_ROOT / "docs" / "runbooks" / f"{rule['alert']}.md"
        assert runbook.is_file(), f"{rule['alert']}: no runbook at {runbook}"
        assert f"# {rule['alert']}" in runbook.read_text()


def test_runbook_urls_follow_the_configured_base(tmp_path: Path) -> None:
    """The same rules with another base: promtool now expects the URLs under that base, so
    the annotation really is built from the external label, not written out."""
    (tmp_path / "tests").mkdir()
    (tmp_path / "rules").symlink_to(PROM / "rules")
    text = RULE_TESTS.read_text().replace("runbooks.example.org/hito", "ops.example.net/rb")
    (tmp_path / "tests" / "hito_test.yml").write_text(text)
    assert _promtool("test", "rules", "tests/hito_test.yml", cwd=tmp_path).returncode == 0
    only_urls = RULE_TESTS.read_text().replace(
        'runbook_url: "https://runbooks.example.org/hito/', 'runbook_url: "https://elsewhere/'
    )
    (tmp_path / "tests" / "hito_test.yml").write_text(only_urls)
    assert _promtool("test", "rules", "tests/hito_test.yml", cwd=tmp_path).returncode != 0


def test_every_alert_has_a_firing_and_a_silent_rule_test() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases = [case for t in tests for case in t["alert_rule_test"]]
    alerts = {str(r["alert"]) for r in _rules() if "alert" in r}
    for name in alerts:
        mine = [c for c in cases if c["alertname"] == name]
        assert any(c["exp_alerts"] for c in mine), f"{name}: no test where it fires"
        silent = any(not c["exp_alerts"] for c in mine)
        assert silent is (name not in ALWAYS_FIRING), f"{name}: silent case {silent}"


def test_site_alerts_carry_the_site() -> None:
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    for case in (c for t in tests for c in t["alert_rule_test"]):
        if case["alertname"] in {"CheckpointSurge", "DeviceSilent"}:
            for alert in case["exp_alerts"]:
                assert alert["exp_labels"]["site"], case


def test_rules_read_only_metrics_the_worker_or_the_pager_exports(tmp_path: Path) -> None:
    pager = Pager(PageLog(tmp_path / "pages.jsonl"), "t" * 32)
    families = [*PipelineMetrics().registry.collect(), *pager.registry.collect()]
    # Counters are exported as <name>_total, gauges under their name (no samples needed yet).
    exported = {f"{m.name}_total" if m.type == "counter" else m.name for m in families}
    used = {
        name for rule in _rules() for name in re.findall(r"\b(hito_[a-z_]+)", str(rule["expr"]))
    }
    assert used, "no hito_ metric in the rules?"
    assert used <= exported, f"rules read metrics nobody exports: {sorted(used - exported)}"
