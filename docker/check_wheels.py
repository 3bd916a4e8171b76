"""Whether the image's Python dependencies install on linux/amd64 and linux/arm64 from wheels.

Run from the repository root, with network access to the package index (no Docker needed):

    .venv/bin/python docker/check_wheels.py            # prints a table, exits 1 on a gap

For each architecture, pip resolves pyproject.toml's runtime dependencies for the image's Python
(python:3.11-slim, glibc: manylinux tags) with `--only-binary=:all:`, as `pip download --platform`
would, without installing anything. Then it resolves once more allowing source distributions
(for the host). A package whose newest version has no wheel for an architecture shows up as a
different version there (pip falls back to an older release that has one) or as a failure; the
table says which, and whether that package has a source distribution pip could build (which needs
a compiler in the image's build stage).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON_VERSION = "3.11"  # the Dockerfile's base image
PLATFORMS = {
    "amd64": ["manylinux_2_28_x86_64", "manylinux2014_x86_64", "manylinux_2_17_x86_64"],
    "arm64": ["manylinux_2_28_aarch64", "manylinux2014_aarch64", "manylinux_2_17_aarch64"],
}


def requirements() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as handle:
        return list(tomllib.load(handle)["project"]["dependencies"])


def _resolve(reqs: list[str], extra: list[str]) -> tuple[dict[str, dict], str]:
    """pip's resolution as {name: {"version", "wheel", "url"}}, or ({}, pip's error)."""
    with tempfile.TemporaryDirectory() as scratch:
        report = Path(scratch) / "report.json"
        command = [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--dry-run",
            "--quiet",
            "--ignore-installed",
            "--disable-pip-version-check",
            "--report",
            str(report),
            "--target",
            str(Path(scratch) / "target"),
            *extra,
            *reqs,
        ]
        done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
        if done.returncode != 0:
            lines = [line for line in done.stderr.splitlines() if "ERROR" in line]
            return {}, "\n".join(lines[-3:]) or done.stderr[-500:]
        data = json.loads(report.read_text())
    found = {}
    for item in data["install"]:
        url = item["download_info"]["url"]
        found[item["metadata"]["name"].lower()] = {
            "version": item["metadata"]["version"],
            "wheel": url.rsplit("/", 1)[-1],
            "sdist": not url.endswith(".whl"),
        }
    return found, ""


def platform_args(tags: list[str]) -> list[str]:
    args = ["--only-binary=:all:", "--python-version", PYTHON_VERSION]
    args += ["--implementation", "cp", "--abi", f"cp{PYTHON_VERSION.replace('.', '')}"]
    args += ["--abi", "abi3", "--abi", "none"]
    for tag in tags:
        args += ["--platform", tag]
    return args


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--json", action="store_true", help="print the resolutions as JSON")
    options = parser.parse_args()
    reqs = requirements()
    resolved: dict[str, dict[str, dict]] = {}
    errors: dict[str, str] = {}
    for arch, tags in PLATFORMS.items():
        resolved[arch], errors[arch] = _resolve(reqs, platform_args(tags))
    # The newest versions, source distributions allowed (the host's markers: x86_64 Linux).
    newest, newest_error = _resolve(reqs, [])
    if options.json:
        print(json.dumps({"resolved": resolved, "errors": errors, "newest": newest}, indent=2))
    gaps = 0
    for arch in PLATFORMS:
        if errors[arch]:
            gaps += 1
            print(f"{arch}: no wheel-only install: {errors[arch]}")
            continue
        print(f"{arch}: {len(resolved[arch])} packages, every one from a wheel")
    names = sorted(set().union(*(r.keys() for r in resolved.values())))
    for name in names:
        versions = {arch: resolved[arch].get(name, {}).get("version") for arch in PLATFORMS}
        latest = newest.get(name, {})
        if len(set(versions.values())) > 1 or (
            latest and latest["version"] not in versions.values()
        ):
            shown = ", ".join(f"{arch} {version or '-'}" for arch, version in versions.items())
            print(
                f"  {name}: {shown}; newest {latest.get('version', '?')} (an older version: "
                "the newest has no wheel there, or pyproject.toml pins it there)"
            )
    if newest_error:
        print(f"host resolution failed: {newest_error}")
    return 1 if gaps else 0


if __name__ == "__main__":
    sys.exit(main())
