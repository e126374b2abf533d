"""pixsearch_core and indexing import without the engines (pyspark, ray, deepspeed, airflow)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BLOCK = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = ("pyspark", "ray", "deepspeed", "airflow")
class Blocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this test")
sys.meta_path.insert(0, Blocker())
for pkg in ("pixsearch_core", "indexing"):
    mod = importlib.import_module(pkg)
    for info in pkgutil.walk_packages(mod.__path__, pkg + "."):
        importlib.import_module(info.name)
        print("ok", info.name)
"""


def test_library_imports_without_engines():
    out = subprocess.run([sys.executable, "-c", BLOCK], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "ok pixsearch_core.config" in out.stdout


def test_blocker_really_blocks():
    code = BLOCK.split("for pkg")[0] + "import pyspark\n"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "blocked in this test" in out.stderr
