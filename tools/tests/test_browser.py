"""tools/browser.py: Chromium for the portal's browser test, installed only when missing, as
root, with apt-get; one line otherwise."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

import browser

pytestmark = pytest.mark.unit


def test_present_chromium_needs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    found = tmp_path / "chromium"
    found.write_text("#!/bin/sh\n")
    found.chmod(0o755)
    monkeypatch.setattr(browser, "CHROMIUM", found)
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail("ran a command"))
    assert browser.main([]) == 0
    assert capsys.readouterr().out == f"browser: {found} is installed\n"


def test_missing_without_root_says_so_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "none")
    monkeypatch.setattr(browser, "can_install", lambda: (False, "not root"))
    assert browser.main([]) == 1
    shown = capsys.readouterr().out.splitlines()
    assert shown == [
        f"browser: {tmp_path / 'none'} missing (not root): `sudo apt-get install chromium` "
        "runs the portal's browser test"
    ]


def test_missing_as_root_runs_apt_get_and_reports_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(browser, "CHROMIUM", tmp_path / "none")
    monkeypatch.setattr(browser, "can_install", lambda: (True, ""))
    ran: list[list[str]] = []

    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        ran.append(command)
        return subprocess.CompletedProcess(command, 100 if "install" in command else 0)

    monkeypatch.setattr(subprocess, "run", run)
    assert browser.main([]) == 1
    assert ran == [
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
    ]
    out = capsys.readouterr().out
    assert "browser: apt-get install -y -q --no-install-recommends chromium" in out
    assert "install failed with exit status 100" in out
