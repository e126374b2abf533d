"""README's shell examples. Fast (default suite): every `pixsearch ...` command in README's code parses with the
real CLI, and every fenced bash block is run by docs-check, by the cluster suite, or says why not. Marked `docs`
(`make docs-check`): after `pixsearch demo --steps world,index` (the world and index steps of `make demo`), every
runnable block is executed with bash in that directory."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.cli import build_parser

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()
BLOCK = re.compile(r"(?:(<!-- [^\n]* -->)\n)?```bash\n(.*?)```", re.S)


def blocks() -> list[tuple[str | None, str]]:
    """(marker comment or None, body) of every fenced bash block."""
    return [(m.group(1), m.group(2)) for m in BLOCK.finditer(README)]


def runnable() -> list[str]:
    return [body for marker, body in blocks() if marker is None]


def commands() -> list[str]:
    """Every `pixsearch ...` command line of README's code (fenced or indented), continuations joined."""
    code = "\n".join(body for _, body in blocks())
    code += "\n" + "\n".join(line[4:] for line in README.splitlines() if line.startswith("    pixsearch "))
    code = code.replace("\\\n", " ")
    out = []
    for line in code.splitlines():
        line = line.strip()
        m = re.search(r"(?:^|\s|/|=\S+\s)pixsearch (.*)", line) if "pixsearch " in line else None
        if m and not line.startswith("#") and not re.match(r"^(python|ln|mkdir|export|airflow|spark)", line):
            out.append(re.split(r"\s+#\s", m.group(1))[0].rstrip(" &"))
    return out


def test_every_fenced_bash_block_runs_somewhere_or_says_why_not():
    for marker, body in blocks():
        if marker is None:
            continue
        assert re.match(r"<!-- (cluster-test: \w+|docs-check: skip: .{10,}) -->", marker), (marker, body[:80])
    assert runnable(), "docs-check would run nothing"


@pytest.mark.parametrize("command", commands())
def test_every_pixsearch_command_in_readme_parses(command):
    command = re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", command)  # ${PORT:-8080} -> 8080
    command = re.sub(r"\$(\w+)", "http://127.0.0.1:9000", command)  # $S3 (an endpoint) -> one
    args = shlex.split(command.replace("[--ray-address auto]", "--ray-address auto"))
    if any(a.startswith("$(") for a in args):
        pytest.skip("built by the shell")
    try:
        build_parser().parse_args(args)
    except SystemExit as e:  # argparse: usage errors exit 2, --help exits 0
        assert e.code == 0, f"README: `pixsearch {command}` does not parse"


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """A directory holding `make demo`'s world and index (out/demo/...); reuses DOCS_CHECK_DIR if it has them."""
    root = Path(os.environ.get("DOCS_CHECK_DIR") or tmp_path_factory.mktemp("docs"))
    if not (root / "conf").exists():
        (root / "conf").symlink_to(REPO / "conf")
    if not (root / "out/demo/store/indices/synthcrag/CURRENT").exists():
        proc = subprocess.run(
            [sys.executable, "-m", "jobs.cli", "demo", "--steps", "world,index"],
            cwd=root,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=3600,
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
    return root


def _env() -> dict[str, str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", "PORT": _free_port()}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


@pytest.mark.docs
@pytest.mark.parametrize("body", runnable(), ids=lambda b: b.splitlines()[0][:40])
def test_readme_block_runs_after_the_demo_world_and_index(demo_dir, body):
    proc = subprocess.run(
        ["bash", "-c", "set -euo pipefail\n" + body],
        cwd=demo_dir,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, f"{body}\n--- stdout\n{proc.stdout[-3000:]}\n--- stderr\n{proc.stderr[-3000:]}"
