"""What the CLI prints when its output is not a terminal (CI logs, pipes, files)."""

from __future__ import annotations

import pytest

from meshops.console import NOT_A_TERMINAL_WIDTH, make, table

pytestmark = pytest.mark.unit

NAME = "acme_transport_taxinyc.local_maintainers_main_f38292c2_revenue." + "x" * 120


def test_a_table_never_folds_a_name_when_output_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)  # pytest-xdist's workers set it
    out = make()
    shown = table("task", "tables written (rows)", title="a run")
    shown.add_row("revenue_by_borough", f"{NAME} (7)")
    out.print(shown)
    lines = capsys.readouterr().out.splitlines()
    assert any(f"{NAME} (7)" in line for line in lines), lines  # one line: copyable
    assert out.width == out.size.width == NOT_A_TERMINAL_WIDTH


def test_columns_still_decides_the_width(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "60")
    shown = table("task", "tables written (rows)")
    shown.add_row("revenue_by_borough", NAME)
    make().print(shown)
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 60
