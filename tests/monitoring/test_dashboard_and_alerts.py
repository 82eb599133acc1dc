"""docs/grafana-dashboard.json and docs/prometheus-alerts.yaml: every series they query is one /metrics
serves, and the dashboard's data source resolves when Grafana provisions it from a file (Compose), where
an import's `__inputs` are never asked for."""

import json
import re

import promql_parser
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from monitoring import beat
from tests.processes import ROOT

from .test_metrics import TOKEN, scrape

DASHBOARD = ROOT / "docs" / "grafana-dashboard.json"
ALERTS = ROOT / "docs" / "prometheus-alerts.yaml"
# The series the product defines; PromQL's functions, labels and keywords never start so.
OURS = re.compile(r"\b(?:orchestrator|django)_[a-zA-Z0-9_]+")


@pytest.fixture(autouse=True)
def _metrics_access(settings):
    settings.METRICS_TOKEN = TOKEN
    settings.METRICS_ALLOWED_NETWORKS = []


def served_names(client):
    """Every family and sample name of a scrape: a family with no sample yet still declares its name."""
    beat.record_sweep("tasks.sweep")  # the sweeps' age is served once one has run
    scrape(client)  # the checks of an ordinary scrape (200, parses)
    body = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {TOKEN}").content.decode()
    names = set()
    for family in text_string_to_metric_families(body):
        names.add(family.name)
        names.update(sample.name for sample in family.samples)
    # Counters are declared without their _total; histograms' parts may have no sample yet.
    for name in list(names):
        names.update(f"{name}{suffix}" for suffix in ("_total", "_bucket", "_sum", "_count", "_created"))
    return names


def dashboard_panels():
    return json.loads(DASHBOARD.read_text())["panels"]


def dashboard_exprs():
    return [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]


def alert_rules():
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def test_every_query_is_valid_promql():
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    for expr in exprs:
        promql_parser.parse(expr)  # raises, naming what is wrong
    with pytest.raises(ValueError):
        promql_parser.parse("sum(orchestrator_queue_depth")  # the parser does refuse


@pytest.mark.django_db
def test_every_series_the_dashboard_and_the_alerts_query_is_served(client):
    served = served_names(client)
    exprs = dashboard_exprs() + [rule["expr"] for rule in alert_rules()]
    assert len(exprs) >= 20
    queried = {name for expr in exprs for name in OURS.findall(expr)}
    assert queried, "no orchestrator series found in the queries"
    assert sorted(queried - served) == []


def test_the_dashboards_data_source_is_a_variable_it_defines():
    dashboard = json.loads(DASHBOARD.read_text())
    # An import asks for `__inputs`; file provisioning does not, and would leave "${...}" unresolved.
    assert "__inputs" not in dashboard
    variables = {v["name"]: v for v in dashboard["templating"]["list"] if v["type"] == "datasource"}
    used = set()
    for panel in dashboard_panels():
        for holder in [panel, *panel.get("targets", [])]:
            source = holder.get("datasource")
            if source is None:
                continue
            assert source["type"] == "prometheus"
            found = re.fullmatch(r"\$\{(\w+)\}", source["uid"])
            assert found, f"panel {panel['title']!r}: a fixed data source uid {source['uid']!r}"
            used.add(found.group(1))
    assert used and used <= set(variables)
    assert all(variables[name]["query"] == "prometheus" for name in used)


def test_every_alert_names_what_it_means_without_a_value_its_expression_cannot_give():
    rules = alert_rules()
    assert {rule["alert"] for rule in rules} >= {"OrchestratorAgentsOffline", "OrchestratorBeatStale"}
    for rule in rules:
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        # `a and b` keeps a's value: when a is a comparison with 0, $value is always 0.
        if re.search(r"==\s*0\s+and\b", rule["expr"]):
            text = " ".join(rule["annotations"].values())
            assert "$value" not in text, rule["alert"]
