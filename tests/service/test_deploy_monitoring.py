"""The monitoring files shipped in deploy/: the Prometheus alerting rules pass `promtool
check rules` and their unit tests (`promtool test rules`), the Grafana dashboard is a valid
importable dashboard, and every metric either of them names is one /metrics really serves
(a real Metrics registry, scraped)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from mailbridge.app import build_app
from mailbridge.clock import FrozenClock
from mailbridge.oauth.tokens import TokenProviders
from mailbridge.service.health import Health
from mailbridge.service.metrics import Metrics
from tests.support.builders import make_config
from tests.support.required import unavailable
from tests.support.sla_world import NOWHERE, START

REPO = Path(__file__).resolve().parents[2]
ALERTS = REPO / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO / "deploy" / "prometheus" / "alerts_test.yml"
DASHBOARD = REPO / "deploy" / "grafana" / "mailbridge.json"
METRIC = re.compile(r"\bmailbridge_[a-z0-9_]+\b")
DATASOURCE = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
# What each kind of family serves, besides its name (prometheus_client's suffixes).
SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def promtool() -> str:
    tool = shutil.which("promtool")
    if tool is None:
        unavailable("promtool is missing (Debian package prometheus)", "Prometheus rule checks")
    assert tool is not None
    return tool


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, check=False
    )


def dashboard() -> dict[str, Any]:
    found = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert isinstance(found, dict)
    return found


def expressions(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for panel in board["panels"] for target in panel["targets"]]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """Every sample name a fresh daemon's registry can serve, read from its exposition:
    families without a sample yet (no mailbox polled, no OAuth2 account) still say their
    name and type."""
    tmp_path = tmp_path_factory.mktemp("served")
    config = make_config(
        tmp_path,
        database_url=f"sqlite:///{tmp_path / 'mailbridge.db'}",
        imap=NOWHERE,
        smtp=NOWHERE,
    )
    clock = FrozenClock(START)
    app = build_app(config, clock=clock)
    try:
        metrics = Metrics(app, Health(clock), TokenProviders(config, clock))
        text = metrics.render().decode()
    finally:
        app.close()
    return {
        family.name + suffix
        for family in text_string_to_metric_families(text)
        for suffix in SUFFIXES.get(family.type, ("",))
    }


# --- the alerting rules --------------------------------------------------------------------


@pytest.mark.unit
def test_promtool_accepts_the_rules_and_refuses_a_broken_copy(tmp_path: Path) -> None:
    checked = run("check", "rules", str(ALERTS))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout

    broken = tmp_path / "alerts.yml"
    broken.write_text(
        ALERTS.read_text(encoding="utf-8").replace("> 900", "> > 900", 1), encoding="utf-8"
    )
    refused = run("check", "rules", str(broken))
    assert refused.returncode != 0 and "FAILED" in refused.stdout + refused.stderr


@pytest.mark.unit
def test_the_rules_unit_tests_pass_and_can_fail(tmp_path: Path) -> None:
    passed = run("test", "rules", str(ALERT_TESTS))
    assert passed.returncode == 0, passed.stdout + passed.stderr
    text = ALERT_TESTS.read_text(encoding="utf-8")
    assert text.count("alertname: ") >= 4  # several alerts, each firing and not

    # A rule that waits too long fails its test: the tests are not vacuous.
    (tmp_path / "alerts.yml").write_text(
        ALERTS.read_text(encoding="utf-8").replace("for: 5m", "for: 50m"), encoding="utf-8"
    )
    (tmp_path / "alerts_test.yml").write_text(text, encoding="utf-8")
    failed = run("test", "rules", str(tmp_path / "alerts_test.yml"))
    assert failed.returncode != 0 and "FAILED" in failed.stdout + failed.stderr


@pytest.mark.unit
def test_the_alerts_the_issue_asks_for_are_there() -> None:
    names = set(re.findall(r"^\s*- alert: (\w+)$", ALERTS.read_text(encoding="utf-8"), re.M))
    assert {
        "MailbridgeTicketUnansweredPastSla",
        "MailbridgeOutboxStuck",
        "MailbridgeOutboxFailed",
        "MailbridgeMailboxNotPolled",
        "MailbridgeOAuthTokenExpiring",
        "MailbridgeQuarantineGrowing",
    } <= names


@pytest.mark.db
def test_every_metric_the_rules_name_is_served(served: set[str]) -> None:
    named = set(METRIC.findall(ALERTS.read_text(encoding="utf-8")))
    assert len(named) >= 8
    assert named - served == set()


# --- the dashboard ---------------------------------------------------------------------------


@pytest.mark.unit
def test_the_dashboard_asks_for_its_prometheus_and_uses_only_that() -> None:
    board = dashboard()
    assert [(i["name"], i["type"], i["pluginId"]) for i in board["__inputs"]] == [
        ("DS_PROMETHEUS", "datasource", "prometheus")
    ]
    assert board["uid"] and board["title"] == "mailbridge"
    assert isinstance(board["schemaVersion"], int)
    for panel in board["panels"]:
        assert panel["datasource"] == DATASOURCE, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]
            assert METRIC.search(target["expr"]), (panel["title"], target["expr"])
    for variable in board["templating"]["list"]:
        assert variable["datasource"] == DATASOURCE


@pytest.mark.unit
def test_the_dashboard_panels_are_laid_out_once_each() -> None:
    board = dashboard()
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids))
    taken: set[tuple[int, int]] = set()
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@pytest.mark.unit
def test_the_dashboard_shows_what_the_issue_asks_for() -> None:
    board = dashboard()
    by_title = {
        panel["title"]: " ".join(t["expr"] for t in panel["targets"]) for panel in board["panels"]
    }
    everything = " ".join(by_title.values())
    wanted = {
        "tickets in": "mailbridge_tickets_created_total",
        "SLA met": "mailbridge_sla_met_total",
        "escalations": "mailbridge_escalations_total",
        "backlog": "mailbridge_tickets{",
        "outbox": "mailbridge_outbox_messages",
        "quarantine": "mailbridge_quarantined_messages",
        "mailbox last poll": "mailbridge_mailbox_last_poll_timestamp_seconds",
    }
    for what, metric in wanted.items():
        assert metric in everything, what
    quantile = r"histogram_quantile\((0\.\d+), sum by \(le\) \(.*?"
    quantiles = re.findall(quantile + "mailbridge_first_response_seconds_bucket", everything)
    assert sorted(quantiles) == ["0.5", "0.9"]


@pytest.mark.db
def test_every_metric_the_dashboard_names_is_served(served: set[str]) -> None:
    board = dashboard()
    named = {name for expr in expressions(board) for name in METRIC.findall(expr)}
    for variable in board["templating"]["list"]:
        named |= set(METRIC.findall(variable["definition"]))
    assert len(named) >= 12
    assert named - served == set()


@pytest.mark.unit
def test_every_dashboard_expression_is_promql(tmp_path: Path) -> None:
    """promtool parses each expression as a recording rule (YAML reads JSON), with the
    queue variable as Grafana fills it in."""
    exprs = [expr.replace("$queue", ".*") for expr in expressions(dashboard())]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [{"record": f"dashboard:{n}", "expr": e} for n, e in enumerate(exprs)],
            }
        ]
    }
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(json.dumps(rules), encoding="utf-8")
    checked = run("check", "rules", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{len(exprs)} rules found" in checked.stdout
