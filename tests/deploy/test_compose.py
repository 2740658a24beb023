"""docker-compose.yml and service/Dockerfile describe a deployment that convlab can actually run.

These check the files against the code, without an engine: the compose file parses (with PyYAML, and with the
compose installed here when there is one), every command is a real `convlab` sub-command, every CONVLAB_
variable is a real setting, and the file keeps to what both compose v2 and docker-compose 1.29 read alike.
test_stack.py builds the image and runs the stack.
"""

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import build_parser
from service.config import Settings, variable_names

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "service" / "Dockerfile"
POSTGRES_ENV = ROOT / "service" / "container" / "postgres.env"


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


def test_postgres_profile_runs_postgres_that_no_service_requires(compose):
    """No service depends on `postgres`: compose v2 refuses a dependency on a service whose profile is off
    (unless `required: false`, which docker-compose 1.29 refuses); the image's entrypoint waits instead."""
    services = compose["services"]
    assert services["postgres"]["profiles"] == ["postgres"]
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    for name in ("api", "worker", "migrate"):
        assert "postgres" not in services[name].get("depends_on", {})
    assert re.search(r'^ENTRYPOINT \["convlab-entrypoint"\]$', DOCKERFILE.read_text(), flags=re.MULTILINE)
    entrypoint = (ROOT / "service" / "container" / "entrypoint.sh").read_text()
    assert "SELECT 1" in entrypoint and entrypoint.rstrip().endswith('exec "$@"')


def test_compose_file_avoids_what_compose_1_29_reads_differently():
    text = COMPOSE.read_text()
    assert not re.search(r"^name:", text, flags=re.MULTILINE), "1.29 refuses a top-level name"
    assert not re.search(r"^\s+required:", text, flags=re.MULTILINE), "1.29 refuses depends_on.required"
    assert not re.search(r"\$\{[^}]*\$\{", text), "1.29 keeps a nested ${...} as text"


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


def _env_file(path: Path) -> dict[str, str]:
    lines = [line.strip() for line in path.read_text().splitlines()]
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def test_database_url_is_sqlite_unless_set_and_the_postgres_env_file_names_the_postgres_service(compose):
    services = compose["services"]
    pg = services["postgres"]["environment"]
    expected_pg = (
        f"postgresql+psycopg://{pg['POSTGRES_USER']}:{pg['POSTGRES_PASSWORD']}@postgres:5432/{pg['POSTGRES_DB']}"
    )
    profile = _env_file(POSTGRES_ENV)
    assert profile == {"COMPOSE_PROFILES": "postgres", "CONVLAB_DATABASE_URL": expected_pg}
    for name in ("api", "worker", "migrate"):
        environment = services[name]["environment"]
        url = environment["CONVLAB_DATABASE_URL"]
        assert _interpolate(url, profile) == expected_pg
        default = Settings(database_url=_interpolate(url, {}), state_dir=environment["CONVLAB_STATE_DIR"])
        assert default.database_url == "sqlite:////var/lib/convlab/convlab.db"


def _compose_here() -> list[str] | None:
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def test_the_compose_installed_here_reads_every_profile(tmp_path):
    """The postgres and monitoring profiles as the real compose reads them (their images, postgres:16-alpine,
    prom/prometheus and grafana/grafana, cannot be pulled where the suite runs, so they are parsed, not run)."""
    command = _compose_here()
    if command is None:
        pytest.skip("neither `docker compose` nor docker-compose is installed (make test-deps installs it)")
    (tmp_path / "metrics-token").write_text("cvl_x\n")
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "CONVLAB_METRICS_TOKEN_FILE": str(tmp_path / "metrics-token")}

    def config(*args: str) -> dict[str, Any]:
        run = subprocess.run([*command, *args, "config"], cwd=ROOT, env=env, capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        return yaml.safe_load(run.stdout)

    plain = config()
    assert plain["services"]["api"]["environment"]["CONVLAB_DATABASE_URL"] in ("", None)
    postgres = config("--env-file", str(POSTGRES_ENV))
    assert (
        postgres["services"]["worker"]["environment"]["CONVLAB_DATABASE_URL"]
        == _env_file(POSTGRES_ENV)["CONVLAB_DATABASE_URL"]
    )
    monitoring = config("--profile", "monitoring")
    assert {"prometheus", "grafana"} <= set(monitoring["services"])
    assert monitoring["services"]["prometheus"]["depends_on"]["api"]["condition"] == "service_healthy"


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
    copies = re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.MULTILINE)  # from the build context
    assert copies
    for sources in copies:
        for source in sources.split():
            assert (ROOT / source).exists(), f"COPY {source}: no such path in the repository"
    cmd = re.search(r"^CMD (\[.*\])$", text, flags=re.MULTILINE)
    assert cmd is not None
    command = yaml.safe_load(cmd.group(1))
    assert command[0] == "convlab" and build_parser().parse_args(command[1:]).command == "serve"
    assert "download.pytorch.org/whl/cpu" in text, "the default image must use CPU torch"
