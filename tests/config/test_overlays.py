"""Per-environment overlays (OGEM_ENV) and `${NAME}` interpolation, in both formats."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from gateway.config import config_check

pytestmark = pytest.mark.django_db

NATIVE_BASE = """
models:
  - {name: chat, provider: mock, model: small, rpm: 10, tags: [dev]}
  - {name: embed, provider: mock, model: mock-embed}
router:
  num_retries: 1
  timeout: 30
  fallbacks: {chat: [embed]}
settings:
  drop_params: true
environments:
  staging:
    router: {num_retries: 4}
"""
NATIVE_PRODUCTION = """
models:
  - {name: chat, provider: mock, model: large, rpm: 600}
router:
  timeout: 90
"""


def _problems(problems) -> list[str]:
    return [f"{p.severity.value}: {p.location.line}: {p.message}" for p in problems]


def test_a_production_file_is_merged_over_the_base(tmp_path: Path) -> None:
    base = tmp_path / "ogem.yaml"
    base.write_text(NATIVE_BASE)
    (tmp_path / "ogem.production.yaml").write_text(NATIVE_PRODUCTION)

    config, problems = config_check(str(base), environment="production")
    assert config is not None, _problems(problems)
    # Lists are replaced whole: the base's two models became the overlay's one.
    assert [(d.model_name, d.upstream_model, d.rpm, d.tags) for d in config.deployments] == [
        ("chat", "large", 600, ())
    ]
    # Mappings merge key by key: timeout from the overlay, the rest from the base.
    assert (config.router.timeout, config.router.num_retries) == (90, 1)
    assert config.router.fallbacks == {"chat": ("embed",)}
    assert config.general["drop_params"] is True
    assert (config.environment, config.overlays) == (
        "production",
        (str(tmp_path / "ogem.production.yaml"),),
    )

    # Without OGEM_ENV the base is used as written, and its environments section is no key.
    plain, problems = config_check(str(base))
    assert plain is not None and problems == []
    assert [d.upstream_model for d in plain.deployments] == ["small", "mock-embed"]
    assert (plain.router.timeout, plain.router.num_retries, plain.overlays) == (30, 1, ())


def test_the_section_applies_then_the_file(tmp_path: Path) -> None:
    base = tmp_path / "config.yaml"
    base.write_text(
        "model_list:\n"
        "  - {model_name: a, litellm_params: {model: mock/a, rpm: 5}}\n"
        "router_settings: {num_retries: 1, timeout: 10}\n"
        "environments:\n"
        "  staging:\n"
        "    router_settings: {num_retries: 3, timeout: 20}\n"
    )
    config, problems = config_check(str(base), environment="staging")
    assert config is not None and problems == []
    assert (config.router.num_retries, config.router.timeout, config.format) == (3, 20, "litellm")

    (tmp_path / "config.staging.yaml").write_text("router_settings: {timeout: 45}\n")
    config, problems = config_check(str(base), environment="staging")
    assert config is not None and problems == []
    assert (config.router.num_retries, config.router.timeout) == (3, 45)
    assert [d.model_name for d in config.deployments] == ["a"]


def test_an_environment_with_no_overlay_warns_and_uses_the_base(tmp_path: Path) -> None:
    base = tmp_path / "ogem.yaml"
    base.write_text(NATIVE_BASE)
    config, problems = config_check(str(base), environment="qa")
    assert config is not None
    assert _problems(problems) == [
        'warning: 2: OGEM_ENV is "qa" but there is no environments.qa section nor a file '
        "ogem.qa.yaml; the base configuration is used as it is"
    ]
    assert config.overlays == (str(tmp_path / "ogem.qa.yaml"),)


def test_overlay_errors_are_located_in_the_overlay(tmp_path: Path) -> None:
    base = tmp_path / "ogem.yaml"
    base.write_text(NATIVE_BASE)
    overlay = tmp_path / "ogem.production.yaml"
    overlay.write_text("router:\n  timeout: soon\n")
    config, problems = config_check(str(base), environment="production")
    assert config is None
    assert [(p.location.source, p.location.line) for p in problems] == [(str(overlay), 2)]
    assert "router.timeout" in problems[0].message

    # One format per configuration: an Ogem base with a LiteLLM overlay is refused.
    overlay.write_text("model_list: []\n")
    config, problems = config_check(str(base), environment="production")
    assert config is None
    assert "use one format per file" in problems[0].message

    overlay.write_text("environments: {production: {}}\n")
    config, problems = config_check(str(base), environment="production")
    assert config is None
    assert _problems(problems) == [
        "error: 1: environments: an overlay file cannot have environments of its own; write "
        "them in the base file"
    ]

    config, problems = config_check(str(base), environment="../etc")
    assert config is None
    assert 'OGEM_ENV "../etc" is not an environment name' in problems[0].message


def test_environment_variables_are_interpolated(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OGEM_TEST_RPM", "120")
    monkeypatch.setenv("OGEM_TEST_MODEL", "from-env")
    monkeypatch.setenv("OGEM_TEST_KEY", "sk-from-env")
    monkeypatch.delenv("OGEM_TEST_UNSET", raising=False)
    base = tmp_path / "config.yaml"
    base.write_text(
        "model_list:\n"
        "  - model_name: chat\n"
        "    litellm_params:\n"
        "      model: mock/${OGEM_TEST_MODEL}\n"
        "      rpm: ${OGEM_TEST_RPM}\n"
        '      tpm: "${OGEM_TEST_UNSET:-900}"\n'
        "      api_key: ${OGEM_TEST_KEY}\n"
        "      api_base: http://127.0.0.1:1/$${literal}\n"
    )
    config, problems = config_check(str(base))
    assert config is not None, _problems(problems)
    # No "the key is written in the file": it is not, it comes from the environment.
    assert problems == []
    (deployment,) = config.deployments
    assert deployment.upstream_model == "from-env"
    assert deployment.rpm == 120  # a plain value takes its type from the text
    assert deployment.tpm == 900  # a quoted one stays a string, read as the field wants
    assert deployment.api_key == "sk-from-env"
    assert deployment.api_base == "http://127.0.0.1:1/${literal}"

    base.write_text("models:\n  - {name: chat, provider: mock, model: '${OGEM_TEST_UNSET}'}\n")
    config, problems = config_check(str(base))
    assert config is None
    assert (
        "error: 2: models[0].model: the environment variable OGEM_TEST_UNSET is not set "
        "(write ${OGEM_TEST_UNSET:-default} to give a default)"
    ) in _problems(problems)


def test_overlays_are_interpolated_too(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("OGEM_TEST_TIMEOUT", "75")
    monkeypatch.delenv("OGEM_TEST_STAGING_ONLY", raising=False)
    base = tmp_path / "ogem.yaml"
    # A variable of another environment's section is not asked for.
    base.write_text(NATIVE_BASE + "  qa:\n    router: {timeout: '${OGEM_TEST_STAGING_ONLY}'}\n")
    (tmp_path / "ogem.production.yaml").write_text("router: {timeout: '${OGEM_TEST_TIMEOUT}'}\n")
    config, problems = config_check(str(base), environment="production")
    assert config is not None, _problems(problems)
    assert config.router.timeout == 75
    config, problems = config_check(str(base), environment="qa")
    assert config is None
    assert "environments.qa.router.timeout: the environment variable OGEM_TEST_STAGING_ONLY" in (
        problems[0].message
    )


def _check_config(*args: str) -> tuple[int, str]:
    out = StringIO()
    try:
        call_command("check_config", *args, stdout=out, no_color=True)
    except SystemExit as exc:
        return int(exc.code or 0), out.getvalue()
    return 0, out.getvalue()


def test_check_config_understands_overlays(tmp_path: Path, settings) -> None:
    base = tmp_path / "ogem.yaml"
    base.write_text(NATIVE_BASE)
    (tmp_path / "ogem.production.yaml").write_text("router:\n  timeout: soon\n")
    code, out = _check_config(str(base))
    assert code == 0
    assert out.endswith(
        f"{base}: OK, ogem format, 2 deployments in 2 model groups (0 errors, 0 warnings)\n"
    )

    code, out = _check_config(str(base), "--env", "production")
    assert code == 1
    assert f"{tmp_path / 'ogem.production.yaml'}:2:12" in out

    settings.OGEM_ENV = "staging"  # OGEM_ENV is the default of --env
    code, out = _check_config(str(base))
    assert code == 0
    assert f"{base} for environment staging: OK, ogem format, 2 deployments" in out
    code, out = _check_config(str(base), "--env", "")
    assert f"{base}: OK" in out


BODY = b"""
models:
  - {name: remote, provider: mock, model: remote}
router: {timeout: 10}
environments:
  production:
    router: {timeout: 99}
"""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path != "/ogem.yaml":  # an overlay URL is never guessed
            self.send_response(404)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def config_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/ogem.yaml"
    server.shutdown()
    server.server_close()


def test_a_url_configuration_takes_its_environment_section(config_url: str) -> None:
    config, problems = config_check(config_url, allow_http_loopback=True, environment="production")
    assert config is not None and problems == []
    assert (config.router.timeout, config.overlays) == (99, ())
    config, problems = config_check(config_url, allow_http_loopback=True)
    assert config is not None and config.router.timeout == 10
