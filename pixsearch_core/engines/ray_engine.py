"""Ray: join a cluster by address (config, --ray-address, or RAY_ADDRESS) or start a private local one.

    started = init_ray(RayConfig(address="auto"))     # joins; logs which cluster and its resources
    ...
    shutdown_ray(started)

Joining passes no resources (a running cluster owns them). A local Ray binds to 127.0.0.1 only and keeps Ray's
default token authentication; it is sized by `local_num_cpus` and `object_store_mb`.
"""

from __future__ import annotations

import logging
import os

from pydantic import Field

from pixsearch_core.config import Config
from pixsearch_core.engines.code import CODE_PACKAGES, code_root, put_code_on_path

log = logging.getLogger(__name__)

#: Ray's own switch: when false, a node uses the loopback address (and binds to it) instead of the host's IP
_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


class RayConfig(Config):
    """Where Ray runs. `address: null` = RAY_ADDRESS if set, else a private local Ray."""

    address: str | None = Field(
        None,
        description="a cluster to join: auto (the one on this machine), "
        "ray://head:10001, head:6379; null = $RAY_ADDRESS, else start a local Ray",
    )
    local_num_cpus: int | None = Field(2, ge=1, description="CPUs of a local Ray; null = all")
    object_store_mb: int = Field(600, ge=100, description="object store of a local Ray")
    ship_code: bool = Field(
        True,
        description="joining a cluster: send this checkout's packages to its workers "
        "(runtime_env py_modules) so they run the driver's code",
    )


def ray_address(cfg: RayConfig) -> str | None:
    """The cluster to join: `cfg.address`, else $RAY_ADDRESS, else None (start a local Ray)."""
    return cfg.address or os.environ.get("RAY_ADDRESS") or None


def _runtime_env() -> dict:
    root = code_root()
    return {
        "py_modules": [str(root / p) for p in CODE_PACKAGES if (root / p).is_dir()],
        "excludes": ["__pycache__", "*.pyc"],
    }


def _loopback(address: str) -> bool:
    host = address.split("://")[-1].rsplit(":", 1)[0]
    return host in ("127.0.0.1", "localhost")


def _use_loopback() -> None:
    """Make this process's Ray node use (and listen on) 127.0.0.1, not the host's address."""
    from ray._private import ray_constants

    os.environ[_LOOPBACK_ENV] = "0"  # for processes started from here
    ray_constants.ENABLE_RAY_CLUSTER = False  # this process: the constant was read when ray was imported


def _describe() -> str:
    import ray

    res = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    return (
        f"{ray.get_runtime_context().gcs_address} ({nodes} node(s), {res.get('CPU', 0):g} CPUs, "
        f"{res.get('GPU', 0):g} GPUs)"
    )


def init_ray(cfg: RayConfig) -> bool:
    """Join the configured cluster or start a local Ray; returns True if this call connected (shut it down)."""
    address = ray_address(cfg)
    import ray

    if ray.is_initialized():
        return False
    if address:
        if _loopback(address):  # a one-machine cluster on 127.0.0.1: this driver must use the loopback too
            _use_loopback()
        env = _runtime_env() if cfg.ship_code else None
        source = "config" if cfg.address else "RAY_ADDRESS"
        ray.init(address=address, log_to_driver=False, runtime_env=env)
        log.info(
            "joined the Ray cluster at %s (address %r from %s; code shipped: %s)",
            _describe(),
            address,
            source,
            cfg.ship_code,
        )
        return True
    _use_loopback()
    put_code_on_path()  # local workers import this checkout, not another installed copy
    ray.init(
        address="local",
        num_cpus=cfg.local_num_cpus,
        object_store_memory=cfg.object_store_mb << 20,
        include_dashboard=False,
        log_to_driver=False,
    )
    log.info("started a local Ray at %s", _describe())
    return True


def shutdown_ray(started: bool) -> None:
    """Disconnect (and stop a local Ray) if `init_ray` connected."""
    if started:
        import ray

        ray.shutdown()
