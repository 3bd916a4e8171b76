"""docker/helm/ogem: rendered by Helm's own engine (Helm v4's Go SDK, which the helm-python-sdk
wheel ships as a shared library: `helm template` and `helm lint` without the binary), and every
manifest validated against the Kubernetes JSON schemas kubernetes-validate ships (strict: an
unknown field fails), for the oldest Kubernetes the chart supports and the newest known.

What this cannot verify without a cluster: that the pods start (image pull, probes answering,
the migrations Job finishing), the rolling update's timing and the HPA's metrics. The rolling
handover itself is proven on this machine by tests/site/test_rolling_deploy.py.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

helm = pytest.importorskip(
    "helm_python", reason="helm-python-sdk (Helm's engine) has no wheel for this platform"
)
kubernetes_validate = pytest.importorskip("kubernetes_validate.utils")

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "docker" / "helm" / "ogem"
RELEASE = "prod"
NAMESPACE = "ai"

EXTERNAL = {
    "externalDatabase": {"url": "postgres://ogem:pw@db.internal:5432/ogem"},
    "externalRedis": {"url": "redis://cache.internal:6379/0"},
}
EVERYTHING: dict[str, Any] = {
    "image": {"repository": "registry.example.com/ogem", "tag": "1.2.3"},
    "config": {
        "inline": "models:\n  - {name: chat, provider: mock, model: mock-chat}\n",
        "environment": "production",
    },
    "secrets": {"extraEnvFromSecrets": ["ogem-provider-keys"]},
    "env": {"OGEM_LOG_LEVEL": "INFO", "DJANGO_ALLOWED_HOSTS": "ogem.example.com"},
    "web": {"shutdownDelay": 12, "shutdownGrace": 40},
    "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
    "ingress": {"enabled": True, "className": "nginx", "tls": [{"hosts": ["ogem.example.com"]}]},
    "persistence": {"existingClaim": "ogem-var"},
    "postgresql": {"enabled": True},
    "redis": {"enabled": True},
}


def _render(values: dict[str, Any], *, revision: int = 1) -> list[dict[str, Any]]:
    chart = helm.Chart.load(CHART)
    rendered = chart.render(
        values, name=RELEASE, namespace=NAMESPACE, revision=revision, is_install=revision == 1
    )
    documents = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        documents += [doc for doc in yaml.safe_load_all(text) if doc]
    return documents


def _kinds(documents: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(doc["kind"], doc["metadata"]["name"]): doc for doc in documents}


def _versions() -> list[str]:
    """The oldest schema set at or above the chart's kubeVersion (1.25), and the newest."""
    known = kubernetes_validate.all_versions()
    wanted = [v for v in known if tuple(map(int, v.split(".")[:2])) >= (1, 25)]
    return sorted({wanted[0], kubernetes_validate.latest_version()})


def _validate(documents: list[dict[str, Any]]) -> None:
    for version in _versions():
        for doc in documents:
            kubernetes_validate.validate(doc, version, strict=True)


def _container(pod_owner: dict[str, Any], name: str) -> dict[str, Any]:
    spec = pod_owner["spec"]["template"]["spec"]
    return next(c for c in spec["containers"] + spec.get("initContainers", []) if c["name"] == name)


def _env(container: dict[str, Any]) -> dict[str, Any]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container["env"]}


def test_the_validator_catches_what_a_cluster_would_refuse() -> None:
    web = _kinds(_render(EXTERNAL))[("Deployment", "prod-ogem-web")]
    _container(web, "web")["readinessProbe"]["httpGet"]["pth"] = "/health/ready"
    with pytest.raises(kubernetes_validate.ValidationError, match="pth"):
        kubernetes_validate.validate(web, "1.30.0", strict=True)


def test_helm_lint_passes_strict() -> None:
    report = helm.lint(CHART, EXTERNAL, strict=True, kube_version="v1.30.0")
    assert report["errors"] == []
    # Severity 1 is informational ("icon is recommended"); no warning or error.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_defaults_refuse_to_render_without_a_database() -> None:
    with pytest.raises(helm.errors.HelmRenderError, match="Ogem needs PostgreSQL"):
        _render({})
    with pytest.raises(helm.errors.HelmRenderError, match="Ogem needs Redis"):
        _render({"externalDatabase": EXTERNAL["externalDatabase"]})
    with pytest.raises(helm.errors.HelmRenderError, match="config: set one of"):
        _render({**EXTERNAL, "config": {"inline": "models: []", "url": "https://x/c.yaml"}})


def test_the_minimal_release_is_valid_and_wired() -> None:
    documents = _render(EXTERNAL)
    _validate(documents)
    found = _kinds(documents)
    assert sorted(found) == [
        ("Deployment", "prod-ogem-beat"),
        ("Deployment", "prod-ogem-web"),
        ("Deployment", "prod-ogem-worker"),
        ("Job", "prod-ogem-migrate-1"),
        ("PodDisruptionBudget", "prod-ogem-web"),
        ("Secret", "prod-ogem"),
        ("Service", "prod-ogem"),
        ("ServiceAccount", "prod-ogem"),
    ]
    secret = found[("Secret", "prod-ogem")]["data"]
    assert base64.b64decode(secret["DATABASE_URL"]).decode() == EXTERNAL["externalDatabase"]["url"]
    assert base64.b64decode(secret["REDIS_URL"]).decode() == EXTERNAL["externalRedis"]["url"]
    # Generated keys long enough for the production settings' checks.
    assert len(base64.b64decode(secret["OGEM_MASTER_KEY"])) >= 20
    assert len(base64.b64decode(secret["DJANGO_SECRET_KEY"])) >= 32
    assert len(base64.b64decode(secret["OGEM_ENCRYPTION_KEYS"])) >= 32

    web = found[("Deployment", "prod-ogem-web")]
    container = _container(web, "web")
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"]["path"] == "/health/live"
    assert web["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 10 + 30 + 5
    env = _env(container)
    assert (env["OGEM_SHUTDOWN_DELAY"], env["OGEM_SHUTDOWN_GRACE"]) == ("10", "30")
    assert env["DJANGO_SETTINGS_MODULE"] == "ogem_site.settings.production"
    assert "OGEM_CONFIG" not in env  # no configuration: the database's deployments only

    # The Service and the PodDisruptionBudget select the web pods, and only them.
    labels = web["spec"]["template"]["metadata"]["labels"]
    service = found[("Service", "prod-ogem")]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == container["ports"][0]["name"]
    pdb = found[("PodDisruptionBudget", "prod-ogem-web")]
    assert pdb["spec"]["selector"]["matchLabels"] == web["spec"]["selector"]["matchLabels"]
    for name in ("prod-ogem-worker", "prod-ogem-beat"):
        other = found[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert not pdb["spec"]["selector"]["matchLabels"].items() <= other.items()

    # Every Ogem container waits for the migrations the Job runs.
    job = found[("Job", "prod-ogem-migrate-1")]
    assert _container(job, "migrate")["args"] == ["migrate", "--noinput"]
    for name in ("prod-ogem-web", "prod-ogem-worker", "prod-ogem-beat"):
        wait = _container(found[("Deployment", name)], "wait-for-migrations")
        assert "migrate --check" in wait["command"][-1]
    assert found[("Deployment", "prod-ogem-beat")]["spec"]["strategy"] == {"type": "Recreate"}


def test_everything_on_is_valid_and_wired() -> None:
    documents = _render({**EXTERNAL, **EVERYTHING}, revision=7)
    _validate(documents)
    found = _kinds(documents)
    assert {
        ("HorizontalPodAutoscaler", "prod-ogem-web"),
        ("Ingress", "prod-ogem"),
        ("ConfigMap", "prod-ogem-config"),
        ("StatefulSet", "prod-postgresql"),
        ("StatefulSet", "prod-redis"),
        ("Service", "prod-postgresql"),
        ("Service", "prod-redis"),
        ("Secret", "prod-postgresql"),
        ("Job", "prod-ogem-migrate-7"),  # a new Job each revision: a Job's pod spec is immutable
    } <= set(found)

    web = found[("Deployment", "prod-ogem-web")]
    assert "replicas" not in web["spec"]  # the HorizontalPodAutoscaler owns it
    hpa = found[("HorizontalPodAutoscaler", "prod-ogem-web")]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "prod-ogem-web",
    }
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu", "memory"]
    assert web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 12 + 40 + 5

    container = _container(web, "web")
    assert container["image"] == "registry.example.com/ogem:1.2.3"
    env = _env(container)
    # The configuration: the ConfigMap mounted whole (hot reload sees its updates) and named.
    assert (env["OGEM_CONFIG"], env["OGEM_ENV"]) == ("/etc/ogem/config.yaml", "production")
    config_map = found[("ConfigMap", "prod-ogem-config")]
    assert yaml.safe_load(config_map["data"]["config.yaml"]) == yaml.safe_load(
        EVERYTHING["config"]["inline"]
    )
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["config"] == {"name": "config", "mountPath": "/etc/ogem", "readOnly": True}
    assert "subPath" not in mounts["config"]
    volumes = {v["name"]: v for v in web["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "prod-ogem-config"
    assert volumes["var"]["persistentVolumeClaim"]["claimName"] == "ogem-var"

    # The bundled databases: the URL is built from the subchart's Secret, which is rendered.
    assert env["OGEM_POSTGRES_PASSWORD"] == {
        "secretKeyRef": {"name": "prod-postgresql", "key": "password"}
    }
    assert (
        env["DATABASE_URL"] == "postgres://ogem:$(OGEM_POSTGRES_PASSWORD)@prod-postgresql:5432/ogem"
    )
    # Kubernetes expands $(VAR) only for variables defined earlier in the list.
    names = [item["name"] for item in container["env"]]
    assert names.index("OGEM_POSTGRES_PASSWORD") < names.index("DATABASE_URL")
    assert env["REDIS_URL"] == "redis://prod-redis:6379/0"
    assert env["DJANGO_ALLOWED_HOSTS"] == "ogem.example.com"
    assert [source["secretRef"]["name"] for source in container["envFrom"]] == [
        "prod-ogem",
        "ogem-provider-keys",
    ]
    ingress = found[("Ingress", "prod-ogem")]["spec"]
    backend = ingress["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "prod-ogem", "port": {"name": "http"}}


def test_existing_secrets_and_config_are_used_not_created() -> None:
    documents = _render(
        {
            "secrets": {"existingSecret": "ogem-secrets"},
            "config": {"existingSecret": "ogem-config", "file": "litellm.yaml"},
            "autoscaling": {"enabled": True},
        }
    )
    _validate(documents)
    found = _kinds(documents)
    assert not [key for key in found if key[0] in {"Secret", "ConfigMap"}]
    for name in ("prod-ogem-web", "prod-ogem-worker", "prod-ogem-beat"):
        deployment = found[("Deployment", name)]
        volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
        assert volumes["config"] == {"name": "config", "secret": {"secretName": "ogem-config"}}
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["envFrom"] == [{"secretRef": {"name": "ogem-secrets"}}]
        assert _env(container)["OGEM_CONFIG"] == "/etc/ogem/litellm.yaml"

    url_documents = _render({**EXTERNAL, "config": {"url": "https://config.internal/ogem.yaml"}})
    web = _kinds(url_documents)[("Deployment", "prod-ogem-web")]
    assert _env(_container(web, "web"))["OGEM_CONFIG"] == "https://config.internal/ogem.yaml"
    assert "config" not in {v["name"] for v in web["spec"]["template"]["spec"]["volumes"]}


def test_what_the_chart_runs_is_what_ogem_understands() -> None:
    """The serve arguments parse, and every OGEM_/DJANGO_ variable the chart sets is read."""
    from django.core.management import load_command_class

    documents = _render({**EXTERNAL, **EVERYTHING})
    web = _kinds(documents)[("Deployment", "prod-ogem-web")]
    args = _container(web, "web")["args"]
    assert args[0] == "serve"
    command = load_command_class("gateway", "serve")
    options = command.create_parser("manage.py", "serve").parse_args(args[1:])
    assert (options.no_celery, options.no_migrate, options.port) == (True, True, 8000)

    sources = "\n".join(
        path.read_text() for path in (ROOT / "ogem_site").rglob("*.py") if "tests" not in path.parts
    )
    sources += "\n".join(path.read_text() for path in (ROOT / "gateway").rglob("*.py"))
    names = {
        item["name"]
        for doc in documents
        if doc["kind"] in {"Deployment", "Job"}
        for container in doc["spec"]["template"]["spec"]["containers"]
        for item in container.get("env", [])
    }
    ours = {name for name in names if re.match(r"^(OGEM|DJANGO)_", name)}
    ours -= {"OGEM_POSTGRES_PASSWORD"}  # the chart's own, only expanded into DATABASE_URL
    assert ours and all(f'"{name}"' in sources for name in ours), ours
