"""The `monitoring` compose profile: Prometheus scrapes the API with a metrics token, and every metric the
Grafana dashboard and the alert rules query is one that /metrics exports."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "service" / "monitoring"
METRIC = re.compile(r"\bconvlab_[a-z_]+\b")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture
def exported(trained) -> set[str]:
    """Every sample name /metrics exports once the service has trained, predicted and answered."""
    trained.post("/jobs/1/predict", json={"pixels": [[[0] * 28] * 28]})
    text = trained.get("/metrics").text
    return {sample.name for family in text_string_to_metric_families(text) for sample in family.samples}


def dashboard_queries() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "convlab.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def alert_queries() -> list[str]:
    rules = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_monitoring_profile_runs_prometheus_and_grafana_with_the_files(compose):
    services = compose["services"]
    for name in ("prometheus", "grafana"):
        assert services[name]["profiles"] == ["monitoring"]
    for mount in services["prometheus"]["volumes"] + services["grafana"]["volumes"]:
        source = mount.split(":")[0]
        if source.startswith("./"):
            assert (ROOT / source).exists(), source
    assert "convlab_metrics_token" in compose["secrets"]


def test_prometheus_scrapes_the_api_with_a_bearer_token():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    job = config["scrape_configs"][0]
    assert job["metrics_path"] == "/metrics" and job["static_configs"][0]["targets"] == ["api:8000"]
    assert job["authorization"]["type"] == "Bearer"
    assert job["authorization"]["credentials_file"] == "/run/secrets/convlab_metrics_token"


def test_every_metric_the_dashboard_and_alerts_query_is_exported(exported):
    queries = dashboard_queries() + alert_queries()
    assert len(dashboard_queries()) >= 10
    used = {name for query in queries for name in METRIC.findall(query)}
    assert used, "the dashboard queries convlab's metrics"
    assert used <= exported, f"queried but not exported: {sorted(used - exported)}"


def test_the_api_health_check_is_the_readiness_probe(compose):
    assert "/health/ready" in " ".join(compose["services"]["api"]["healthcheck"]["test"])
