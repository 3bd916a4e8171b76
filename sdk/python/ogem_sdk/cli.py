"""`ogem`: the management API and a chat from a terminal (docs/cli.md).

The URL and key come from `--url`/`--key`, then OGEM_BASE_URL/OGEM_API_KEY, then the file
`ogem login` wrote (readable by its owner only). Errors print the API's message and exit 1.
"""

from __future__ import annotations

import csv
import io
import json
import os
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import click
import httpx

from ogem_sdk.client import Ogem
from ogem_sdk.errors import OgemError

ENV_URL = "OGEM_BASE_URL"
ENV_KEY = "OGEM_API_KEY"


def config_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "ogem" / "config.json"


def config_read() -> dict[str, str]:
    path = config_path()
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"{path} is unreadable ({exc}); run `ogem login` again") from exc
    return {name: str(value) for name, value in data.items()} if isinstance(data, dict) else {}


def config_write(*, url: str, key: str) -> Path:
    """Write the login where only its owner can read it (0600 in a 0700 directory)."""
    path = config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(path.parent, 0o700)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump({"url": url, "key": key}, handle)
    os.chmod(path, 0o600)
    return path


class Context:
    def __init__(self, *, url: str | None, key: str | None, output: str) -> None:
        saved = config_read()
        self.url = (url or os.environ.get(ENV_URL) or saved.get("url") or "").rstrip("/")
        self.key = key or os.environ.get(ENV_KEY) or saved.get("key") or ""
        self.output = output

    def require(self) -> None:
        if not self.url or not self.key:
            raise click.ClickException(
                f"not logged in: run `ogem login`, or set {ENV_URL} and {ENV_KEY}"
            )

    def client(self) -> Ogem:
        self.require()
        return Ogem(base_url=self.url, api_key=self.key)


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def rows_show(rows: Iterable[dict[str, Any]], *, columns: list[str], output: str) -> None:
    """Rows as an aligned table, CSV or JSON."""
    rows = list(rows)
    if output == "json":
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    if output == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([[_cell(row.get(column)) for column in columns] for row in rows])
        click.echo(buffer.getvalue(), nl=False)
        return
    cells = [[_cell(row.get(column)) for column in columns] for row in rows]
    widths = [
        max([len(column), *(len(line[i]) for line in cells)]) for i, column in enumerate(columns)
    ]
    click.echo(
        "  ".join(column.upper().ljust(widths[i]) for i, column in enumerate(columns)).rstrip()
    )
    for line in cells:
        click.echo("  ".join(value.ljust(widths[i]) for i, value in enumerate(line)).rstrip())


def object_show(obj: Any, *, output: str) -> None:
    if output == "json" or not isinstance(obj, dict):
        click.echo(json.dumps(obj, indent=2, default=str))
        return
    rows_show(
        [{"field": name, "value": value} for name, value in obj.items()],
        columns=["field", "value"],
        output=output,
    )


class CLIGroup(click.Group):
    """API errors end the command with their message and exit status 1, never a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OgemError as exc:
            raise click.ClickException(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise click.ClickException(f"Ogem could not be reached: {exc}") from exc


output_option = click.option(
    "--output",
    "-o",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="How results are printed.",
)


@click.group(cls=CLIGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--url", help=f"Ogem's base URL (else {ENV_URL}, else `ogem login`'s).")
@click.option("--key", help=f"The API key (else {ENV_KEY}, else `ogem login`'s).")
@output_option
@click.version_option(package_name="ogem-sdk", prog_name="ogem")
@click.pass_context
def main(ctx: click.Context, url: str | None, key: str | None, output: str) -> None:
    """Ogem from the terminal: keys, teams, budgets, spend, models and chat."""
    ctx.obj = Context(url=url, key=key, output=output)


@main.command()
@click.option("--url", "login_url", prompt="Ogem URL", default="http://127.0.0.1:8000")
@click.option("--key", "login_key", prompt="API key", hide_input=True)
def login(login_url: str, login_key: str) -> None:
    """Check a URL and key against Ogem, then remember them for the next commands."""
    url = login_url.rstrip("/")
    try:
        answer = httpx.get(
            f"{url}/v1/models", headers={"Authorization": f"Bearer {login_key}"}, timeout=10
        )
    except httpx.HTTPError as exc:
        raise click.ClickException(f"{url} could not be reached: {exc}") from exc
    if answer.status_code in (401, 403):
        raise click.ClickException("Ogem refused this key")
    if answer.status_code >= 400:
        raise click.ClickException(f"{url} answered {answer.status_code}: is it Ogem?")
    path = config_write(url=url, key=login_key)
    click.echo(f"Logged in to {url}; saved in {path} (only you can read it).")


# ---- keys -----------------------------------------------------------------------------------

KEY_COLUMNS = ["id", "name", "key_prefix", "status", "team", "spend", "max_budget", "models"]


@main.group()
def keys() -> None:
    """Virtual keys: create, list, rotate, revoke."""


@keys.command("list")
@click.option("--team", help="Only this team's keys (id or slug).")
@click.option("--status", type=click.Choice(["active", "revoked", "expired"]))
@click.pass_obj
def keys_list(obj: Context, team: str | None, status: str | None) -> None:
    """The keys you may see."""
    rows = obj.client().keys.list(team=team, status=status)
    rows_show(rows, columns=KEY_COLUMNS, output=obj.output)


@keys.command("create")
@click.option("--name", required=True)
@click.option("--team", help="Team id or slug.")
@click.option("--model", "models", multiple=True, help="A model it may use (repeat).")
@click.option("--max-budget", help="USD per budget period.")
@click.option("--budget-duration", help="e.g. 1d, 30d, 1mo.")
@click.pass_obj
def keys_create(
    obj: Context,
    name: str,
    team: str | None,
    models: tuple[str, ...],
    max_budget: str | None,
    budget_duration: str | None,
) -> None:
    """Create a key; its secret is printed once."""
    fields: dict[str, Any] = {"name": name, "models": list(models)}
    for field, value in (("team", team), ("max_budget", max_budget)):
        if value is not None:
            fields[field] = value
    if budget_duration is not None:
        fields["budget_duration"] = budget_duration
    created = obj.client().keys.create(**fields)
    object_show(created, output=obj.output)
    if obj.output == "table":
        click.echo("\nThe secret (`key`) is shown this once: store it now.", err=True)


@keys.command("rotate")
@click.argument("key_id")
@click.option("--grace", type=int, default=None, help="Seconds the old secret keeps working.")
@click.pass_obj
def keys_rotate(obj: Context, key_id: str, grace: int | None) -> None:
    """Issue a new secret for a key; printed once."""
    object_show(obj.client().keys.rotate(key_id, grace_period_seconds=grace), output=obj.output)


@keys.command("revoke")
@click.argument("key_id")
@click.pass_obj
def keys_revoke(obj: Context, key_id: str) -> None:
    """Revoke a key: /v1 refuses it from now on."""
    revoked = obj.client().keys.revoke(key_id)
    click.echo(f"Revoked key {revoked['id']} ({revoked['name']}).")


# ---- teams and budgets ----------------------------------------------------------------------


@main.group()
def teams() -> None:
    """Teams: list and create."""


@teams.command("list")
@click.option("--organization", help="Only this organization's teams (id or slug).")
@click.pass_obj
def teams_list(obj: Context, organization: str | None) -> None:
    rows = obj.client().teams.list(organization=organization)
    rows_show(rows, columns=["id", "name", "slug", "organization", "models"], output=obj.output)


@teams.command("create")
@click.option("--organization", required=True, help="Organization id or slug.")
@click.option("--name", required=True)
@click.option("--slug")
@click.pass_obj
def teams_create(obj: Context, organization: str, name: str, slug: str | None) -> None:
    fields = {"organization": organization, "name": name}
    if slug:
        fields["slug"] = slug
    object_show(obj.client().teams.create(**fields), output=obj.output)


@main.group()
def budgets() -> None:
    """Budgets: list and reset."""


@budgets.command("list")
@click.option("--team", help="Only this team's budgets (id).")
@click.pass_obj
def budgets_list(obj: Context, team: str | None) -> None:
    rows = obj.client().budgets.list(team=team)
    columns = ["id", "scope", "organization", "team", "key", "max_budget", "spend", "reset_at"]
    rows_show(rows, columns=columns, output=obj.output)


@budgets.command("reset")
@click.argument("budget_id")
@click.pass_obj
def budgets_reset(obj: Context, budget_id: str) -> None:
    """Start a new period now."""
    object_show(obj.client().budgets.reset(budget_id), output=obj.output)


# ---- spend, models, chat --------------------------------------------------------------------


@main.command()
@click.option(
    "--group-by",
    default="key",
    show_default=True,
    help="key, team, organization, model, ...",
)
@click.option("--since", help="How far back: 30d, 2w, 12h.")
@click.option("--start", help="First UTC day (YYYY-MM-DD).")
@click.option("--end", help="Last UTC day (YYYY-MM-DD).")
@click.option("--team", type=int)
@click.option("--model")
@click.option("--csv", "as_csv", is_flag=True, help="CSV instead of a table.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@click.pass_obj
def spend(
    obj: Context,
    group_by: str,
    since: str | None,
    start: str | None,
    end: str | None,
    team: int | None,
    model: str | None,
    as_csv: bool,
    as_json: bool,
) -> None:
    """Spend and tokens per group, with a total line."""
    try:
        answer = obj.client().spend(
            group_by=group_by, since=since, start=start, end=end, team=team, model=model
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    output = "csv" if as_csv else "json" if as_json else obj.output
    if output == "json":
        click.echo(json.dumps(answer, indent=2))
        return
    rows = list(answer["results"])
    columns = [group_by, *[name for name in (rows[0] if rows else {}) if name != group_by]]
    if not rows:
        columns = [group_by, "requests", "spend"]
    total = {group_by: "total", **answer.get("total", {})}
    rows_show([*rows, total], columns=columns, output=output)


@main.command()
@click.pass_obj
def models(obj: Context) -> None:
    """The models your key may call on /v1."""
    obj.require()
    answer = httpx.get(
        f"{obj.url}/v1/models", headers={"Authorization": f"Bearer {obj.key}"}, timeout=30
    )
    if answer.status_code >= 400:
        raise click.ClickException(f"{answer.status_code}: {answer.text[:500]}")
    rows = answer.json().get("data", [])
    rows_show(rows, columns=["id", "owned_by"], output=obj.output)


def _stream_text(lines: Iterator[str]) -> Iterator[str]:
    """The content deltas of an OpenAI chat completion stream."""
    for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            return
        event = json.loads(data)
        if "error" in event:
            raise click.ClickException(event["error"].get("message", "the stream failed"))
        for choice in event.get("choices") or []:
            content = (choice.get("delta") or {}).get("content")
            if content:
                yield content


@main.command()
@click.option("--model", "-m", required=True, help="A model your key may call.")
@click.option("--system", help="A system message.")
@click.argument("prompt", required=False)
@click.pass_obj
def chat(obj: Context, model: str, system: str | None, prompt: str | None) -> None:
    """Chat with a model, streamed. With PROMPT: one answer; without: a conversation (an empty
    line or Ctrl-D ends it)."""
    obj.require()
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    interactive = prompt is None
    with httpx.Client(
        base_url=obj.url, headers={"Authorization": f"Bearer {obj.key}"}, timeout=120
    ) as http:
        while True:
            if interactive:
                try:
                    prompt = click.prompt("you", prompt_suffix="> ", default="", show_default=False)
                except (EOFError, click.Abort):
                    prompt = ""
                if not prompt:
                    return
            messages.append({"role": "user", "content": prompt or ""})
            body = {"model": model, "messages": messages, "stream": True}
            with http.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code >= 400:
                    response.read()
                    raise click.ClickException(_error_text(response))
                if interactive:
                    click.echo(f"{model}> ", nl=False)
                answer = []
                for piece in _stream_text(response.iter_lines()):
                    answer.append(piece)
                    click.echo(piece, nl=False)
                    sys.stdout.flush()
                click.echo()
            messages.append({"role": "assistant", "content": "".join(answer)})
            if not interactive:
                return


def _error_text(response: httpx.Response) -> str:
    try:
        return f"{response.status_code}: {response.json()['error']['message']}"
    except (ValueError, KeyError, TypeError):
        return f"{response.status_code}: {response.text[:500]}"


# ---- loadtest -------------------------------------------------------------------------------


def _seconds(text: str) -> float:
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for unit in ("ms", "s", "m", "h"):
        if text.endswith(unit) and text[: -len(unit)].replace(".", "", 1).isdigit():
            return float(text[: -len(unit)]) * units[unit]
    try:
        return float(text)
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a duration (10, 30s, 2m)") from None


def _loadtest_body(
    *, body_file: str | None, model: str | None, prompt: str, max_tokens: int | None, stream: bool
) -> bytes:
    if body_file is not None:
        try:
            raw = sys.stdin.read() if body_file == "-" else Path(body_file).read_text()
            body = json.loads(raw)
        except (OSError, ValueError) as exc:
            raise click.BadParameter(f"{body_file}: {exc}", param_hint="--body") from exc
        if not isinstance(body, dict):
            raise click.BadParameter("the body must be a JSON object", param_hint="--body")
    else:
        if not model:
            raise click.UsageError("give --model (or a whole request with --body)")
        body = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    if model:
        body["model"] = model
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        body.setdefault("stream_options", {"include_usage": True})
    return json.dumps(body, separators=(",", ":")).encode()


@main.group(invoke_without_command=True)
@click.option(
    "--url",
    "target",
    help="The URL to POST to (default: /v1/chat/completions of the Ogem you logged in to).",
)
@click.option("--model", "-m", help="The request's model.")
@click.option("--prompt", default="Say hello.", show_default=True, help="The user message.")
@click.option("--max-tokens", type=int, help="The request's max_tokens.")
@click.option("--body", "body_file", help="A JSON file (- for stdin): the whole request body.")
@click.option("--header", "-H", "headers", multiple=True, help="'Name: value' (repeat).")
@click.option("--stream", is_flag=True, help="Streamed answers; the report adds TTFT.")
@click.option(
    "--concurrency",
    "-c",
    type=click.IntRange(min=1),
    help="Connections (closed loop, default 10); with --rate, the most in flight (default 1000).",
)
@click.option(
    "--rate", "-r", type=click.FloatRange(min=0, min_open=True), help="Open loop: requests/s."
)
@click.option("--duration", "-d", help="How long: 30s, 2m (default 10s unless --requests).")
@click.option("--requests", "-n", "count", type=click.IntRange(min=1), help="Stop after N.")
@click.option("--timeout", type=float, default=60, show_default=True, help="Per request, s.")
@click.option("--json", "json_path", help="Also write the report as JSON to this file.")
@click.option(
    "--progress/--no-progress", default=None, help="The progress line (default: on a terminal)."
)
@click.pass_context
def loadtest(
    ctx: click.Context,
    target: str | None,
    model: str | None,
    prompt: str,
    max_tokens: int | None,
    body_file: str | None,
    headers: tuple[str, ...],
    stream: bool,
    concurrency: int | None,
    rate: float | None,
    duration: str | None,
    count: int | None,
    timeout: float,
    json_path: str | None,
    progress: bool | None,
) -> None:
    """Load an endpoint: closed loop (--concurrency) or open loop (--rate), for a --duration
    or a number of --requests; reports throughput, latency and TTFT percentiles and errors.
    `ogem loadtest compare A.json B.json` compares two --json reports."""
    if ctx.invoked_subcommand is not None:
        return
    from ogem_sdk.loadtest import Plan, loadtest_run, progress_printer, report_text

    obj: Context = ctx.obj
    extra: dict[str, str] = {}
    if target is None:
        obj.require()
        target = f"{obj.url}/v1/chat/completions"
    if obj.key:
        extra["Authorization"] = f"Bearer {obj.key}"
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise click.BadParameter(f"{header!r} is not 'Name: value'", param_hint="--header")
        extra[name.strip()] = value.strip()
    body = _loadtest_body(
        body_file=body_file, model=model, prompt=prompt, max_tokens=max_tokens, stream=stream
    )
    seconds = _seconds(duration) if duration else (None if count else 10.0)
    plan = Plan(
        url=target,
        body=body,
        headers=extra,
        stream=stream,
        concurrency=concurrency or (1000 if rate else 10),
        rate=rate,
        duration=seconds,
        requests=count,
        timeout=timeout,
    )
    show = sys.stderr.isatty() if progress is None else progress
    try:
        report = loadtest_run(plan, progress=progress_printer(plan) if show else None)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--url") from exc
    except OSError as exc:
        raise click.ClickException(f"{target} could not be reached: {exc}") from exc
    if show:
        click.echo(err=True)
    if json_path:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n")
    if obj.output == "json":
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(report_text(report))
    if report["requests"] == 0:
        raise click.ClickException("no request succeeded")


@loadtest.command("compare")
@click.argument("first", type=click.Path(exists=True, dir_okay=False))
@click.argument("second", type=click.Path(exists=True, dir_okay=False))
@click.pass_obj
def loadtest_compare(obj: Context, first: str, second: str) -> None:
    """Two `ogem loadtest --json` reports side by side: A, B, the change and whether it is
    better or worse."""
    from ogem_sdk.loadtest import compare_rows, report_load

    try:
        a, b = report_load(first), report_load(second)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    columns = ["metric", "a", "b", "delta", "change", "verdict"]
    rows_show(compare_rows(a, b), columns=columns, output=obj.output)


# ---- config ---------------------------------------------------------------------------------

SCHEMA_FILE = Path(__file__).with_name("config.schema.json")


def _manage_py() -> Path | None:
    """Ogem's manage.py, when Ogem's code is importable here (or the current directory is it)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("ogem_site")
    except (ImportError, ValueError):
        spec = None
    candidates = [Path.cwd() / "manage.py"]
    if spec is not None and spec.origin:
        candidates.insert(0, Path(spec.origin).resolve().parent.parent / "manage.py")
    return next((path for path in candidates if path.is_file()), None)


@main.group("config")
def config_group() -> None:
    """Ogem's configuration file: check one, or print its JSON Schema."""


@config_group.command("check")
@click.argument("file")
@click.option("--skip-secrets", is_flag=True, help="Check os.environ/ and file:// references only.")
@click.option("--keys", "list_keys", is_flag=True, help="LiteLLM config: how each key is used.")
@click.option(
    "--env",
    "environment",
    default=None,
    help="Merge this environment's overlays (default: OGEM_ENV).",
)
def config_check(file: str, skip_secrets: bool, list_keys: bool, environment: str | None) -> None:
    """Every problem of an Ogem or LiteLLM config FILE (or https:// URL) as file:line:column;
    exits 1 on any error. Runs Ogem's own `manage.py check_config`, so it needs Ogem's code."""
    manage = _manage_py()
    if manage is None:
        raise click.ClickException(
            "Ogem's code is not importable here, and checking needs it: run this where Ogem is "
            "installed (or from its checkout), or `python manage.py check_config FILE` there"
        )
    import subprocess

    argv = [sys.executable, str(manage), "check_config", file]
    argv += ["--skip-secrets"] if skip_secrets else []
    argv += ["--keys"] if list_keys else []
    argv += ["--env", environment] if environment is not None else []
    done = subprocess.run(argv, check=False)  # noqa: S603 - our interpreter, Ogem's manage.py
    if done.returncode:
        sys.exit(1 if done.returncode == 1 else done.returncode)


@config_group.command("schema")
@click.option("--output", "-o", "path", help="Write it to this file instead of stdout.")
def config_schema(path: str | None) -> None:
    """The JSON Schema of Ogem's configuration format (for editors and CI)."""
    text = SCHEMA_FILE.read_text()
    if path:
        Path(path).write_text(text)
    else:
        click.echo(text, nl=False)


if __name__ == "__main__":  # pragma: no cover
    main()
