"""Shared fixtures: a local S3 server (moto) on 127.0.0.1, and an ObjectStore per backend."""

from __future__ import annotations

import os
import uuid

import pytest

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-compatible HTTP server on 127.0.0.1 (moto), with test credentials in the standard AWS chain."""
    from moto.server import ThreadedMotoServer

    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def s3_store(s3_server):
    from pixsearch_core.storage import ObjectStore, StorageConfig

    store = ObjectStore(
        StorageConfig(
            endpoint_url=s3_server,
            region="us-east-1",
            addressing_style="path",
            multipart_threshold_mb=5,
            multipart_chunk_mb=5,
        )
    )
    bucket = f"test-{uuid.uuid4().hex[:12]}"
    store.s3.create_bucket(Bucket=bucket)
    store.root = f"s3://{bucket}"
    return store


@pytest.fixture
def local_store(tmp_path):
    from pixsearch_core.storage import ObjectStore

    store = ObjectStore()
    store.root = str(tmp_path / "store")
    return store


@pytest.fixture(params=["local", "file", "s3"])
def store(request, tmp_path):
    """The same tests against a plain directory, file:// URIs and the local S3 server."""
    if request.param == "s3":
        return request.getfixturevalue("s3_store")
    st = request.getfixturevalue("local_store")
    if request.param == "file":
        st.root = "file://" + str(tmp_path / "store")
    return st


@pytest.fixture(scope="session")
def ray_session():
    """One small local Ray for the whole test session (fractional-CPU actors, so a 2-CPU machine is not starved), shut
    down at the end."""
    from pixsearch_core.engines import RayConfig, init_ray, shutdown_ray

    started = init_ray(RayConfig(local_num_cpus=2, object_store_mb=600))
    import ray

    yield ray
    shutdown_ray(started)


@pytest.fixture(scope="session")
def spark():
    """One local[2] SparkSession for the whole test session (a start costs about 5 s); tests using it are `spark`."""
    from indexing.config import IndexBuildConfig
    from indexing.tasks import worker_modules
    from pixsearch_core.engines import SparkConfig, spark_session

    # workers forked from a daemon that preloaded the index tasks' libraries, as a build's own session has them
    cfg = SparkConfig(master="local[2]", conf={"spark.driver.memory": "1g"})
    session = spark_session(cfg, worker_modules(IndexBuildConfig()))
    yield session
    session.stop()
