"""Bad values for the new commands' options: a usage error naming the option, no traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from mml_tool.cli import cli


@pytest.mark.parametrize(
    "args",
    [
        ["history", "--since", "999999d"],
        ["history", "--since", "99999999999d"],
        ["history", "prune", "--keep", "100000000000d"],
    ],
)
def test_huge_duration_is_a_usage_error(
    args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    result = CliRunner().invoke(cli, [*args, "--history", str(tmp_path / "h.db")])
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "too long" in result.output


def test_malformed_postgres_url_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "Pg-Review-Secret-27"
    monkeypatch.setenv("REVIEW_PGPW", secret)
    for url in ("postgresql://u:${REVIEW_PGPW}@[::1/db", f"postgresql://u:{secret}@[::1/db"):
        result = CliRunner().invoke(cli, ["history", "--history", url])
        assert result.exit_code == 2, result.output
        assert isinstance(result.exception, SystemExit)
        assert "not a database URL" in result.output and secret not in result.output
