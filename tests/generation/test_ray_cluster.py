"""The Ray pool joins a cluster started apart from the bot (`ray start --head`), as in deploy/ray:
the bot reaches it by address, with token authentication on, and its workers run there."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from generation.config import ModelConfig, RayOptions
from generation.pool.worker import WorkerSettings
from generation.pool.workers import PoolConfig, WorkerPool
from generation.prompt import parse_prompt
from generation.specs import imagine_spec

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.ray, pytest.mark.asyncio]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A one-node Ray cluster in its own processes (token auth on: tests/conftest.py sets
    RAY_AUTH_MODE before Ray is imported, as deploy/ray sets it on every node and the bot).

    It is this test's alone, so two test runs on one machine do not meet: its own ports, its own
    temp dir, and stopping it stops only its processes (`ray start --block` in a session of its own,
    ended by a signal; `ray stop` would stop every Ray on the machine)."""
    ray_cli = str(Path(sys.executable).with_name("ray"))
    if not Path(ray_cli).exists():
        ray_cli = shutil.which("ray") or pytest.skip("the ray command is not installed")
    port = _free_port()
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # short: Ray's socket paths have a limit
    head = subprocess.Popen(
        [ray_cli, "start", "--head", "--block", f"--port={port}",
         "--num-cpus=2", "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={temp_dir}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(port, head)
        yield f"127.0.0.1:{port}"
    finally:
        ray.shutdown()
        with contextlib.suppress(ProcessLookupError):  # a head that failed to start is gone already
            os.killpg(head.pid, signal.SIGTERM)  # --block stops the processes it started
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(head.pid, signal.SIGKILL)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _wait_for_port(port: int, head: subprocess.Popen[bytes], timeout_s: float = 120.0) -> None:
    """Until the head's GCS accepts connections (or the head died, or the time is up)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if head.poll() is not None:
            raise RuntimeError(f"ray start --head exited with {head.returncode}")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise TimeoutError(f"the Ray head did not listen on port {port} within {timeout_s:.0f} s")


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
