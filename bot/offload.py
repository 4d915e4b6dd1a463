"""Work on users' files that would stall the event loop even in a thread: pure-Python parsing (a
safetensors header's JSON) holds the GIL for as long as it runs (0.5-0.9 s for a hostile 16 MiB
header), so it runs in a small separate process instead. Decoding, encoding and hashing release the
GIL and go to threads (asyncio.to_thread) as usual."""

from __future__ import annotations

import asyncio
import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import ParamSpec, TypeVar

from generation.errors import DreamcordError
from generation.pool.local_backend import secrets_withheld

P = ParamSpec("P")
T = TypeVar("T")

_executor: ProcessPoolExecutor | None = None


def _pool() -> ProcessPoolExecutor:
    global _executor
    if _executor is None:
        # spawn: the helper starts from a clean interpreter, not a copy of the bot (its sockets, its
        # memory); it imports only what the called function needs.
        context = multiprocessing.get_context("spawn")
        _executor = ProcessPoolExecutor(max_workers=1, mp_context=context)
    return _executor


async def in_helper_process(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """`function(*args)` in the helper process (a module-level function; arguments and result are
    pickled, so keep them small). Errors it raises arrive as they are; a helper that dies (out of
    memory on a hostile file) is replaced and the call answered with a clear error."""
    global _executor
    loop = asyncio.get_running_loop()
    try:
        with secrets_withheld():  # the helper (started by the first call) reads users' files
            future = loop.run_in_executor(_pool(), _call, function, args, kwargs)
        return await future
    except BrokenProcessPool:
        _executor = None
        raise DreamcordError("the file could not be checked (the checker stopped); try again") from None


def _call(function: Callable[..., T], args: tuple[object, ...], kwargs: dict[str, object]) -> T:
    return function(*args, **kwargs)


def shutdown() -> None:
    """Stop the helper (at the bot's exit)."""
    global _executor
    if _executor is not None:
        _executor.shutdown(wait=False, cancel_futures=True)
        _executor = None
