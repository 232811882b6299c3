"""A generator installed as a separate package shows up in `taskforge list` and passes `taskforge check`."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

FIXTURE = Path(__file__).resolve().parents[1] / "plugin_fixture"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(target),
            str(FIXTURE),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return target


def _taskforge(args, site, cwd):
    env = {**os.environ, "PYTHONPATH": str(site)}
    return subprocess.run(
        [sys.executable, "-m", "taskforge", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def test_installed_plugin_is_listed_and_conforms(plugin_site, tmp_path):
    listing = _taskforge(["list", "--as-json"], plugin_site, tmp_path)
    assert listing.returncode == 0, listing.stderr
    families = {row["family"]: row for row in json.loads(listing.stdout)}
    assert "echo_word" in families and "arithmetic" in families
    assert families["echo_word"]["module"] == "taskforge_plugin_echo"

    check = _taskforge(["check", "taskforge_plugin_echo:EchoWord"], plugin_site, tmp_path)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "0 failed" in check.stdout

    out = tmp_path / "echo.jsonl"
    gen = _taskforge(
        ["generate", "echo_word", "-n", "5", "--level", "2", "-o", str(out)], plugin_site, tmp_path
    )
    assert gen.returncode == 0, gen.stderr
    verify = _taskforge(["verify", str(out), "--gold"], plugin_site, tmp_path)
    assert verify.returncode == 0 and "1.000" in verify.stdout


def test_plugin_absent_without_install(tmp_path):
    listing = subprocess.run(
        [sys.executable, "-m", "taskforge", "list", "--as-json"], capture_output=True, text=True, cwd=tmp_path
    )
    assert "echo_word" not in {row["family"] for row in json.loads(listing.stdout)}
