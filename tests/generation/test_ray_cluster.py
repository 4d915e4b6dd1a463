"""The Ray pool joins a cluster started apart from the bot (`ray start --head`), as in deploy/ray:
the bot reaches it by address, with token authentication on, and its workers run there."""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from generation.config import ModelConfig, RayOptions
from generation.pool import PoolConfig, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import imagine_spec
from generation.worker import WorkerSettings

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.asyncio]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def cluster() -> Iterator[str]:
    """A one-node Ray cluster in its own processes (token auth on: tests/conftest.py sets
    RAY_AUTH_MODE before Ray is imported, as deploy/ray sets it on every node and the bot)."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    if not Path(ray_cli).exists():
        ray_cli = shutil.which("ray") or pytest.skip("the ray command is not installed")
    port = _free_port()
    start = [ray_cli, "start", "--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false"]
    subprocess.run(
        [*start, "--disable-usage-stats"], check=True, capture_output=True, timeout=120, env=os.environ
    )
    try:
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        subprocess.run([ray_cli, "stop", "--force"], capture_output=True, timeout=120)


async def test_the_pool_joins_a_running_cluster_by_address(cluster: str, tiny_config: ModelConfig) -> None:
    worker = WorkerSettings(models={"tiny": tiny_config}, device="cpu", threads=1, log_level=logging.WARNING)
    config = PoolConfig(
        worker=worker, interactive_devices=("cpu", "cpu"), backend="ray", ray=RayOptions(address=cluster)
    )
    pool = WorkerPool(config)
    await pool.start()
    try:
        assert ray.get_runtime_context().gcs_address.endswith(cluster.rsplit(":", 1)[1])
        assert ray.cluster_resources()["CPU"] == 2  # the cluster's, not a new local instance's
        spec = imagine_spec(parse_prompt("a red circle --steps 2"), tiny_config, 64)
        handles = [pool.submit(i, spec, owner_id=i) for i in range(1, 5)]
        finals = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), 120)
        assert all(len(output.images) == 4 for output in finals)
        assert len(set(pool.worker_pids())) == 2 and None not in pool.worker_pids()
    finally:
        await pool.close()
