"""``paraexec node`` argument handling (the serving path is covered by the end-to-end tests)."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from paraexec.cli import app
from paraexec.rpc.commands import parse_listen


def test_parse_listen():
    assert parse_listen("127.0.0.1:8545") == ("127.0.0.1", 8545)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    for bad in ("8545", "host:", "host:0", "host:70000", "host:x"):
        with pytest.raises(typer.BadParameter):
            parse_listen(bad)


def test_node_refuses_a_directory_without_a_chain(tmp_path):
    result = CliRunner().invoke(app, ["node", "--data", str(tmp_path / "none"), "--rpc", "127.0.0.1:1"])
    assert result.exit_code == 1 and "paraexec init" in result.output
