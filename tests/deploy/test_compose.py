"""docker-compose.yml and service/Dockerfile describe a deployment that convlab can actually run.

No Docker engine is available to the suite, so these check the files against the code: the compose file
parses, every command is a real `convlab` sub-command, every CONVLAB_ variable is a real setting.
"""

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.config import Settings, variable_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "service" / "Dockerfile"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def convlab_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: s for name, s in compose["services"].items() if s.get("command", [None])[0] == "convlab"}


def test_compose_defines_api_worker_migrate_and_postgres(compose):
    assert {"api", "worker", "migrate", "postgres"} <= set(compose["services"])
    assert set(convlab_services(compose)) == {"api", "worker", "migrate"}


@pytest.mark.parametrize("service", ["api", "worker", "migrate"])
def test_each_command_is_a_real_convlab_subcommand(compose, service):
    command = compose["services"][service]["command"]
    assert command[0] == "convlab"
    args = build_parser().parse_args(command[1:])  # argparse exits (SystemExit) on anything unknown
    assert args.command == {"api": "serve", "worker": "worker", "migrate": "db"}[service]


def test_every_environment_variable_is_a_real_setting(compose):
    known = variable_names()
    for name, service in convlab_services(compose).items():
        for variable in service["environment"]:
            assert variable in known, f"{name}: {variable} is not a variable convlab's settings read"


def test_environment_values_parse_as_settings(compose, monkeypatch):
    env = compose["services"]["api"]["environment"]
    for key, value in env.items():
        monkeypatch.setenv(key, _interpolate(str(value), {}))
    settings = Settings()
    assert settings.database_url.startswith("sqlite:////var/lib/convlab/")
    assert settings.migrate_on_start is False
    assert settings.auth_required and settings.access.admin_token is None  # "" means: not supplied


def test_worker_can_be_scaled(compose):
    worker = compose["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker


def test_migration_runs_once_before_api_and_workers(compose):
    services = compose["services"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


def test_named_volumes_hold_database_and_data(compose):
    declared = set(compose["volumes"])
    for name, service in convlab_services(compose).items():
        mounts = {v.split(":")[0]: v.split(":")[1] for v in service["volumes"]}
        assert mounts.get("state") == "/var/lib/convlab", name
        assert mounts.get("data") == "/data", name
        assert set(mounts) <= declared


def test_postgres_profile_runs_postgres_that_services_wait_for(compose):
    services = compose["services"]
    assert services["postgres"]["profiles"] == ["postgres"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("api", "worker", "migrate"):
        dependency = services[name]["depends_on"]["postgres"]
        assert dependency == {"condition": "service_healthy", "required": False}


def _interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's `${VAR:-default}` / `${VAR:+replacement}` interpolation, nesting included (the subset we use)."""
    start = text.find("${")
    if start < 0:
        return text
    depth, end = 0, start
    for end in range(start, len(text)):  # find the brace that closes this expression
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0 and text[end] == "}":
            break
    body = text[start + 2 : end]
    name, op, rest = body.partition(":")
    value = env.get(name, "")
    if op and rest[0] == "-":
        value = value or _interpolate(rest[1:], env)
    elif op and rest[0] == "+":
        value = _interpolate(rest[1:], env) if value else ""
    return text[:start] + value + _interpolate(text[end + 1 :], env)


def test_database_url_follows_the_postgres_profile_unless_set(compose):
    services = compose["services"]
    pg = services["postgres"]["environment"]
    expected_pg = (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    for name in ("api", "worker", "migrate"):
        environment = services[name]["environment"]
        url = environment["CONVLAB_DATABASE_URL"]
        assert _interpolate(url, {"COMPOSE_PROFILES": "postgres"}) == expected_pg
        assert _interpolate(url, {"CONVLAB_DATABASE_URL": "sqlite:////x.db", "COMPOSE_PROFILES": "postgres"}) == (
            "sqlite:////x.db"
        )
        default = Settings(database_url=_interpolate(url, {}), state_dir=environment["CONVLAB_STATE_DIR"])
        assert default.database_url == "sqlite:////var/lib/convlab/convlab.db"


def test_api_and_postgres_have_health_checks(compose):
    services = compose["services"]
    assert "/health" in " ".join(services["api"]["healthcheck"]["test"])
    assert services["postgres"]["healthcheck"]["test"]
    assert services["worker"]["healthcheck"]["test"]


def test_compose_builds_with_the_dockerfile_in_service(compose):
    build = compose["services"]["api"]["build"]
    assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE


def test_dockerfile_copies_paths_that_exist_and_runs_convlab():
    text = DOCKERFILE.read_text()
    copies = re.findall(r"^COPY (.+) \S+$", text, flags=re.MULTILINE)
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert cmd is not None
    command = yaml.safe_load(cmd.group(1))
    assert command[0] == "convlab" and build_parser().parse_args(command[1:]).command == "serve"
    assert "download.pytorch.org/whl/cpu" in text, "the default image must use CPU torch"
