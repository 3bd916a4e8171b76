"""The compose file and Dockerfile name only things that exist (no Docker engine runs here)."""

from __future__ import annotations

import importlib
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml
from celery import Celery
from django.core.management import get_commands, load_command_class

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _compose() -> dict:
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def _dockerfile() -> str:
    return (DOCKER / "Dockerfile").read_text()


def _json_array(instruction: str) -> list[str]:
    match = re.search(rf"^{instruction} (\[.*\])$", _dockerfile(), re.MULTILINE)
    assert match, f"no exec-form {instruction} in the Dockerfile"
    return yaml.safe_load(match.group(1))


def _assert_runs(argv: list[str]) -> None:
    """argv is a command the image can run: a manage.py command or the Celery app."""
    if argv[:2] == ["python", "manage.py"]:
        name, *args = argv[2:]
        assert name in get_commands(), f"no management command {name!r}"
        command = load_command_class(get_commands()[name], name)
        command.create_parser("manage.py", name).parse_args(args)
        return
    if argv[:3] == ["celery", "-A", "ogem_site"]:
        assert isinstance(importlib.import_module("ogem_site.celery").app, Celery)
        assert argv[3] in {"worker", "beat"}
        return
    raise AssertionError(f"unexpected command {argv}")


def test_compose_names_the_five_services():
    services = _compose()["services"]
    default = {name for name, service in services.items() if not service.get("profiles")}
    assert default == {"postgres", "redis", "web", "worker", "beat"}
    # Opt-in: MinIO for the response cache's S3 tier (`--profile minio`).
    assert set(services) - default == {"minio", "minio-init"}


def test_every_service_has_a_healthcheck():
    for name, service in _compose()["services"].items():
        if name == "minio-init":  # a one-shot job: it creates the bucket and exits
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"


def test_compose_requires_no_variable_for_services_it_does_not_start():
    # `${VAR:?message}` fails `docker compose up` for every profile, so only the five default
    # services may require a variable.
    services = _compose()["services"]
    for name, service in services.items():
        if service.get("profiles"):
            assert ":?" not in str(service), f"{name} requires a variable outside its profile"


@pytest.mark.parametrize("service", ["web", "worker", "beat"])
def test_ogem_service_commands_exist(service):
    spec = _compose()["services"][service]
    entrypoint = spec.get("entrypoint") or _json_array("ENTRYPOINT")
    _assert_runs([*entrypoint, *spec["command"]])
    assert spec["build"] == {"context": "..", "dockerfile": "docker/Dockerfile"}
    assert (DOCKER / spec["build"]["context"] / spec["build"]["dockerfile"]).is_file()


def test_web_runs_production_settings_with_postgres_and_redis():
    env = _compose()["services"]["web"]["environment"]
    assert env["DJANGO_SETTINGS_MODULE"] == "ogem_site.settings.production"
    assert importlib.util.find_spec(env["DJANGO_SETTINGS_MODULE"]) is not None
    assert env["DATABASE_URL"].startswith("postgres://ogem:")
    assert env["DATABASE_URL"].endswith("@postgres:5432/ogem")
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert "${OGEM_WORKERS" in env["OGEM_WORKERS"]


def test_web_stop_grace_period_outlasts_the_shutdown_grace():
    """Docker waits stop_grace_period before its SIGKILL: longer than serve's grace + 5 s."""
    web = _compose()["services"]["web"]
    default = re.fullmatch(
        r"\$\{OGEM_SHUTDOWN_GRACE:-(\d+)\}", web["environment"]["OGEM_SHUTDOWN_GRACE"]
    )
    assert default, web["environment"]["OGEM_SHUTDOWN_GRACE"]
    assert int(default.group(1)) == 30  # the default of ogem_site/settings/base.py
    assert int(web["stop_grace_period"].removesuffix("s")) > int(default.group(1)) + 5


def test_compose_environment_is_read_by_ogem():
    """Each variable set for Ogem is one that Ogem (or Django, for the settings module) reads."""
    source = "\n".join(
        path.read_text() for path in (ROOT / "ogem_site").rglob("*.py") if ".venv" not in path.parts
    )
    source += (ROOT / "gateway/management/commands/serve.py").read_text()
    env = _compose()["services"]["web"]["environment"]
    for name in env:
        if name == "DJANGO_SETTINGS_MODULE":
            continue
        assert f'"{name}"' in source, f"{name} is set in compose.yaml but nothing reads it"


def test_dockerfile_default_command_and_entrypoint_exist():
    _assert_runs([*_json_array("ENTRYPOINT"), *_json_array("CMD")])


def test_dockerfile_is_multi_stage_slim_and_non_root():
    text = _dockerfile()
    stages = re.findall(r"^FROM (\S+) AS (\S+)$", text, re.MULTILINE)
    assert stages == [("python:3.11-slim", "build"), ("python:3.11-slim", "runtime")]
    users = re.findall(r"^USER (\S+)$", text, re.MULTILINE)
    assert users == ["ogem"]
    # Nothing fetched by URL: a download would pin one architecture.
    assert not re.search(r"\b(curl|wget)\b|https?://(?!127\.0\.0\.1)", text)


def test_dockerfile_paths_exist():
    text = _dockerfile()
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.MULTILINE):
        for path in shlex.split(source):
            assert (ROOT / path).exists(), f"COPY {path}: missing"
    assert "manage.py collectstatic" in text
    assert (ROOT / "manage.py").is_file()
    assert (ROOT / "pyproject.toml").is_file()


def test_healthcheck_hits_the_liveness_endpoint():
    text = _dockerfile()
    healthcheck = text[text.index("HEALTHCHECK") :].split("\n", 2)[:2]
    assert "/health/live" in " ".join(healthcheck)
    assert '"/health/live"' in (ROOT / "ogem_site/health.py").read_text()


def test_makefile_has_the_contract_targets():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z]+):", makefile, re.MULTILINE))
    assert {"run", "test", "worker", "beat", "bench"} <= targets
    assert "celery -A ogem_site worker" in makefile
    assert "celery -A ogem_site beat" in makefile


def test_secrets_stay_out_of_git_and_the_image():
    ignored = subprocess.run(
        ["git", "check-ignore", "--no-index", "docker/.env"], cwd=ROOT, capture_output=True
    )
    assert ignored.returncode == 0, "docker/.env is not git-ignored"
    patterns = (ROOT / ".dockerignore").read_text().splitlines()
    assert "**/.env" in patterns and "!docker/.env.example" in patterns
    assert not (DOCKER / "Dockerfile.dockerignore").exists()  # it would shadow .dockerignore


def test_compose_passes_docker_env_and_guards_metrics():
    ogem = _compose()["x-ogem"]
    assert ogem["env_file"] == [{"path": ".env", "required": False}]
    environment = _compose()["x-ogem-environment"]
    assert environment["OGEM_METRICS_TOKEN"].startswith("${OGEM_METRICS_TOKEN:?")
    assert "uvicorn" not in (DOCKER / "compose.yaml").read_text() + _dockerfile()
