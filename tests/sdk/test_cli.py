"""The `ogem` CLI (sdk/python/ogem_sdk/cli.py) as a user runs it: subprocesses against a live
Ogem, and `ogem chat` in a real terminal (pexpect)."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import openai
import pexpect
import pytest

from tests.live import LiveServer, usage_record_now

pytestmark = pytest.mark.live


def _environment(home: Path) -> dict[str, str]:
    environ = {name: value for name, value in os.environ.items() if not name.startswith("OGEM_")}
    environ["XDG_CONFIG_HOME"] = str(home)
    return environ


def _ogem(home: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ogem_sdk.cli", *args],
        env=_environment(home),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_login_then_keys_teams_spend_and_models(
    live_ogem: LiveServer, master_key: str, tmp_path: Path
) -> None:
    refused = _ogem(tmp_path, "login", "--url", live_ogem.url, "--key", "sk-wrong")
    assert refused.returncode == 1 and "refused this key" in refused.stderr
    assert not (tmp_path / "ogem" / "config.json").exists()
    missing = _ogem(tmp_path, "keys", "list")
    assert missing.returncode == 1 and "not logged in" in missing.stderr

    done = _ogem(tmp_path, "login", "--url", live_ogem.url, "--key", master_key)
    assert done.returncode == 0, done.stderr
    saved = tmp_path / "ogem" / "config.json"
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700
    assert json.loads(saved.read_text()) == {"url": live_ogem.url, "key": master_key}

    org = _ogem(tmp_path, "-o", "json", "teams", "list")
    assert org.returncode == 0 and json.loads(org.stdout) == []
    from tenants.models import Organization

    organization = Organization.objects.create(name="CLI", slug="cli")
    team = _ogem(
        tmp_path, "-o", "json", "teams", "create", "--organization", "cli", "--name", "Ops"
    )
    assert team.returncode == 0, team.stderr
    team_id = json.loads(team.stdout)["id"]

    created = _ogem(
        tmp_path, "-o", "json", "keys", "create", "--name", "ops", "--team", str(team_id),
        "--model", "mock-chat", "--max-budget", "3",
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    assert key["key"].startswith("sk-") and key["models"] == ["mock-chat"]

    listed = _ogem(tmp_path, "keys", "list", "--team", str(team_id))
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["ID", "NAME", "KEY_PREFIX", "STATUS"]
    assert row.split()[:4] == [str(key["id"]), "ops", key["key_prefix"], "active"]

    models = _ogem(tmp_path, "--key", key["key"], "models")
    assert [line.split()[0] for line in models.stdout.splitlines()[1:]] == ["mock-chat"]

    chat = _ogem(tmp_path, "--key", key["key"], "chat", "-m", "mock-chat", "Say hello")
    assert chat.returncode == 0, chat.stderr
    assert chat.stdout.strip()
    client = openai.OpenAI(base_url=f"{live_ogem.url}/v1", api_key=key["key"], max_retries=0)
    client.chat.completions.create(model="mock-chat", messages=[{"role": "user", "content": "x"}])
    usage_record_now()

    as_csv = _ogem(
        tmp_path, "spend", "--group-by", "team", "--since", "1d", "--csv", "--team", str(team_id)
    )
    assert as_csv.returncode == 0, as_csv.stderr
    lines = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    assert [line["team"] for line in lines] == [str(team_id), "total"]
    assert lines[0]["requests"] == "2" and lines[0]["spend"] == lines[1]["spend"]
    as_json = _ogem(tmp_path, "spend", "--group-by", "team", "--json", "--team", str(team_id))
    assert json.loads(as_json.stdout)["total"]["requests"] == 2
    bad = _ogem(tmp_path, "spend", "--since", "soon")
    assert bad.returncode == 2 and "--since" in bad.stderr

    rotated = _ogem(tmp_path, "-o", "json", "keys", "rotate", str(key["id"]), "--grace", "0")
    new_secret = json.loads(rotated.stdout)["key"]
    assert new_secret != key["key"]
    revoked = _ogem(tmp_path, "keys", "revoke", str(key["id"]))
    assert revoked.returncode == 0 and "Revoked key" in revoked.stdout
    again = _ogem(tmp_path, "keys", "rotate", str(key["id"]))
    assert again.returncode == 1 and "revoked key cannot be rotated" in again.stderr
    assert "Traceback" not in again.stderr
    assert organization.pk


def test_help_everywhere_and_a_dead_server_is_a_clear_error(tmp_path: Path) -> None:
    for command in (
        [], ["keys"], ["keys", "create"], ["spend"], ["chat"], ["login"], ["loadtest"],
        ["loadtest", "compare"], ["config"], ["config", "check"], ["config", "schema"],
    ):  # fmt: skip
        shown = _ogem(tmp_path, *command, "--help")
        assert shown.returncode == 0 and "Usage: " in shown.stdout, command
    dead = _ogem(tmp_path, "--url", "http://127.0.0.1:9", "--key", "k", "keys", "list")
    assert dead.returncode == 1 and "could not be reached" in dead.stderr


def test_chat_in_a_terminal_keeps_the_conversation(
    live_ogem: LiveServer, master_key: str, tmp_path: Path
) -> None:
    environ = _environment(tmp_path)
    environ.update(OGEM_BASE_URL=live_ogem.url, OGEM_API_KEY=master_key)
    terminal = pexpect.spawn(
        sys.executable,
        ["-m", "ogem_sdk.cli", "chat", "-m", "mock-chat"],
        env=environ,
        encoding="utf-8",
        timeout=30,
    )
    try:
        terminal.expect_exact("you> ")
        terminal.sendline("first question")
        terminal.expect_exact("mock-chat> ")
        terminal.expect_exact("you> ")
        first = terminal.before.strip()
        assert first
        terminal.sendline("second question")
        terminal.expect_exact("mock-chat> ")
        terminal.expect_exact("you> ")
        terminal.sendline("")
        terminal.expect(pexpect.EOF)
    finally:
        terminal.close()
    assert terminal.exitstatus == 0
