"""Engines: every job starts or attaches to Spark, Ray or torchrun through this package.

Each job config names its engine with the same key, `engine:`:

    pixsearch index build ... engine=spark | sequential      (settings: the `spark:` section)
    pixsearch eval run ...    engine=ray | sequential        (settings: the `ray:` section)
    pixsearch train ...       engine=sequential | torchrun   (settings: the `torchrun:` section)

`sequential` always means "in this process, no engine". An engine's workers import the same code as the driver:
local workers get this checkout first on their PYTHONPATH (`code_env`), Spark executors of a non-local master get
a zip of the packages (`code_zip`, shipped with addPyFile), Ray clusters joined by address get the packages as a
runtime_env (`ray.ship_code`). `code_version()` names that code (package version, git commit, uncommitted
changes); index manifests record it.

Importing this package imports no engine: pyspark, ray and torch are imported inside the functions that use them.
"""

from __future__ import annotations

import logging
from typing import Any

from pixsearch_core.engines.code import CODE_PACKAGES, code_env, code_root, code_version, code_zip, put_code_on_path
from pixsearch_core.engines.ray_engine import RayConfig, init_ray, ray_address, shutdown_ray
from pixsearch_core.engines.spark_engine import SparkConfig, spark_session
from pixsearch_core.engines.torchrun import TorchrunConfig, inside_launcher, spawn_torchrun, torchrun_command

log = logging.getLogger(__name__)

#: the engines each job accepts (the first is the default)
ENGINES: dict[str, tuple[str, ...]] = {
    "index": ("spark", "sequential"),
    "eval": ("ray", "sequential"),
    "train": ("sequential", "torchrun"),
}


def deprecated(old: str, new: str) -> None:
    """Log that a spelling still works but is deprecated, and what replaces it."""
    log.warning("DEPRECATED: %s; use %s instead (the old spelling will be removed)", old, new)


def rename_key(data: Any, old: str, new: str, where: str) -> Any:
    """For a config model's `mode="before"` validator: accept `old` as a deprecated spelling of `new`.

    A config that still says `old` was written (or typed, as an override) for it, so its value is taken, also
    over a `new` of the shipped config files, and the warning says so."""
    if isinstance(data, dict) and old in data:
        data = dict(data)
        value = data.pop(old)
        replaced = f" (it replaces `{new}: {data[new]}`)" if new in data and data[new] != value else ""
        deprecated(f"{where} key `{old}: {value}`{replaced}", f"`{new}: {value}`")
        data[new] = value
    return data


__all__ = [
    "ENGINES",
    "CODE_PACKAGES",
    "deprecated",
    "rename_key",
    "code_root",
    "code_env",
    "put_code_on_path",
    "code_version",
    "code_zip",
    "RayConfig",
    "init_ray",
    "ray_address",
    "shutdown_ray",
    "SparkConfig",
    "spark_session",
    "TorchrunConfig",
    "inside_launcher",
    "spawn_torchrun",
    "torchrun_command",
]
