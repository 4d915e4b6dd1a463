"""The optional HTTP port (settings: health_port, health_host): `/healthz` for Docker's HEALTHCHECK,
systemd watchdogs and load balancers, `/metrics` for Prometheus (see bot.metrics).

/healthz answers 200 when the bot's gateway connection is open, the database answers a query and every
worker is up; 503 otherwise, with what is wrong. Both are served by aiohttp, already in the process
for discord.py."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

import discord
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.metrics import PoolCollector, unwatch, watch_pool
from generation.pool.workers import WorkerPool

log = logging.getLogger(__name__)
DATABASE_TIMEOUT_S = 5.0


@dataclass
class Health:
    discord: bool
    database: bool
    workers: bool

    @property
    def ok(self) -> bool:
        return self.discord and self.database and self.workers

    def problems(self) -> list[str]:
        named = {"discord": "not connected to Discord", "database": "the database does not answer",
                 "workers": "a worker is not running"}  # fmt: skip
        return [line for key, line in named.items() if not getattr(self, key)]


class HealthServer:
    def __init__(
        self,
        bot: discord.Client,
        pool: WorkerPool,
        sessions: async_sessionmaker[AsyncSession],
        host: str,
        port: int,
    ) -> None:
        self.bot, self.pool, self.sessions, self.host, self.port = bot, pool, sessions, host, port
        self._runner: web.AppRunner | None = None
        self._collector: PoolCollector | None = None

    async def start(self) -> int:
        """Listen; the port actually bound (0 asks the system for a free one)."""
        app = web.Application()
        app.add_routes([web.get("/healthz", self._healthz), web.get("/metrics", self._metrics)])
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self._collector = watch_pool(self.pool)
        bound = site._server.sockets[0].getsockname()[1] if site._server else self.port  # type: ignore[attr-defined]
        log.info("health and metrics on http://%s:%d/healthz and /metrics", self.host, bound)
        return int(bound)

    async def stop(self) -> None:
        if self._collector is not None:
            unwatch(self._collector)
            self._collector = None
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def check(self) -> Health:
        ws = self.bot.ws
        connected = not self.bot.is_closed() and self.bot.is_ready() and ws is not None and ws.open
        workers = self.pool.workers()
        alive = bool(workers) and all(worker.ready.is_set() for worker in workers)
        return Health(discord=connected, database=await self._database_answers(), workers=alive)

    async def _database_answers(self) -> bool:
        async def query() -> None:
            async with self.sessions() as session:
                await session.execute(text("SELECT 1"))

        try:
            await asyncio.wait_for(query(), DATABASE_TIMEOUT_S)
        except Exception as error:  # any failure is "not healthy"; the reason is logged
            log.warning("health check: the database did not answer (%s)", error)
            return False
        return True

    async def _healthz(self, request: web.Request) -> web.Response:
        health = await self.check()
        body = {"ok": health.ok, "discord": health.discord, "database": health.database,
                "workers": health.workers, "problems": health.problems()}  # fmt: skip
        return web.json_response(body, status=200 if health.ok else 503)

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(REGISTRY), headers={"Content-Type": CONTENT_TYPE_LATEST})
