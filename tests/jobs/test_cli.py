"""The `pixsearch` command: --help for every subcommand, --version, and config errors that name the problem."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from jobs import cli

ROOT = Path(__file__).resolve().parents[2]


def test_help_lists_every_subcommand(capsys):
    with pytest.raises(SystemExit) as ei:
        cli.main(["--help"])
    assert ei.value.code == 0
    out = capsys.readouterr().out
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    assert subs, "no subcommands"
    for name in subs:
        assert name in out


def test_each_subcommand_help(capsys):
    parser = cli.build_parser()
    subs = next(a for a in parser._actions if a.dest == "command").choices
    for name in subs:
        with pytest.raises(SystemExit) as ei:
            cli.main([name, "--help"])
        assert ei.value.code == 0
        assert "usage: pixsearch " + name in capsys.readouterr().out


def test_version_via_console_entry():
    out = subprocess.run([sys.executable, "-m", "jobs.cli", "--version"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.startswith("pixsearch 0.")


def test_bad_config_value_fails_naming_key_value_allowed(tmp_path, caplog):
    bad = tmp_path / "storage" / "bad.yaml"
    bad.parent.mkdir()
    bad.write_text("# pixsearch config\naddressing_style: sideways\nmultipart_chunk_mb: 1\n")
    assert cli.main(["config", str(bad)]) == 2
    err = caplog.text
    assert "addressing_style" in err and "'sideways'" in err and "'auto', 'virtual' or 'path'" in err
    assert "multipart_chunk_mb" in err and "greater than or equal to 5" in err


def test_store_cli_roundtrip(tmp_path, capsys):
    src = tmp_path / "a.txt"
    src.write_text("hello")
    assert cli.main(["store", "cp", str(src), f"file://{tmp_path}/out/b.txt"]) == 0
    assert (tmp_path / "out" / "b.txt").read_text() == "hello"
    capsys.readouterr()
    assert cli.main(["store", "ls", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"{tmp_path}/out/b.txt"
    assert cli.main(["store", "cat", str(tmp_path / "missing")]) == 2


def test_console_entry_exit_codes(tmp_path):
    """The console entry (os._exit after main) keeps main's exit code and prints tracebacks of crashes."""
    run = lambda *a: subprocess.run([sys.executable, "-m", "jobs.cli", *a], cwd=ROOT, capture_output=True, text=True)
    ok = run("store", "ls", str(tmp_path))
    assert ok.returncode == 0
    missing = run("store", "cat", str(tmp_path / "missing"))
    assert missing.returncode == 2 and "no object at" in missing.stderr
    usage = run("no-such-command")
    assert usage.returncode == 2 and "invalid choice" in usage.stderr


def test_overrides_may_follow_options():
    """key=value overrides after an option join those before it, in order; any other leftover is still refused."""
    parser = cli.build_parser()
    args = cli.parse(parser, ["demo", "output=/tmp/d", "--steps", "eval,report", "world.seed=1", "seeds=[0,1]"])
    assert args.overrides == ["output=/tmp/d", "world.seed=1", "seeds=[0,1]"]
    assert args.steps == "eval,report"
    args = cli.parse(parser, ["train", "--stage", "2", "stage2.max_steps=250", "--config", "c.yaml", "seed=1"])
    assert args.overrides == ["stage2.max_steps=250", "seed=1"]
    for argv in (["demo", "output=/tmp/d", "--steps", "eval", "stray"], ["demo", "x=1", "--steps", "eval", "--nope"]):
        with pytest.raises(SystemExit) as ei:
            cli.parse(parser, argv)
        assert ei.value.code == 2
    with pytest.raises(SystemExit):  # a subcommand without overrides does not take them
        cli.parse(parser, ["eval", "report", "run-a", "--out", "r", "x=1"])
