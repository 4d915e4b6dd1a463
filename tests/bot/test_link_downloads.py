"""/library import from a link: only public https addresses are fetched (each redirect and each DNS
answer checked), sizes are capped, and what arrives is checked like an upload before it is stored."""

from __future__ import annotations

import ipaddress
import pickle
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import torch
from aiohttp import web
from safetensors.torch import save

from bot.library import LibraryService
from bot.link_downloads import MAX_REDIRECTS, LinkFetcher, LinkRefused, file_url
from generation.models.adapter_files import AdapterFileError

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
LORA = save(
    {"lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight": torch.zeros(4, 32),
     "lora_unet_down_blocks_0_attentions_0_proj_in.lora_up.weight": torch.zeros(32, 4)},
    {"ss_tag_frequency": '{"1_x": {"hexy": 3}}'},
)  # fmt: skip


@pytest.fixture
async def server() -> AsyncIterator[str]:
    """A file server on this host: what the tests' fetcher (loopback allowed, http) may reach."""

    async def lora(_: web.Request) -> web.Response:
        return web.Response(
            body=LORA, headers={"Content-Disposition": 'attachment; filename="hexy_v2.safetensors"'}
        )

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()  # no Content-Length: the cap must hold while reading
        await response.prepare(request)
        for _ in range(8):
            await response.write(b"x" * 1024)
        return response

    async def announced(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    def redirect(location: str) -> Handler:
        async def handler(_: web.Request) -> web.Response:
            raise web.HTTPFound(location)

        return handler

    async def pickled(_: web.Request) -> web.Response:
        return web.Response(body=pickle.dumps({"x": 1}))

    routes = [
        web.get("/lora", lora),
        web.get("/to-lora", redirect("/lora")),
        web.get("/loop", redirect("/loop")),
        web.get("/to-private", redirect("http://10.1.2.3/secret")),
        web.get("/pickle", pickled),
        web.get("/streamed", streamed),
        web.get("/announced", announced),
    ]
    app = web.Application()
    app.add_routes(routes)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    yield f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _local(max_bytes: int = 10**6) -> LinkFetcher:
    return LinkFetcher(max_bytes=max_bytes, schemes=("http",), address_allowed=lambda a: a.is_loopback)


def test_a_hugging_face_file_page_means_the_file() -> None:
    page = "https://huggingface.co/owner/loras/blob/main/styles/ink.safetensors"
    assert file_url(page) == "https://huggingface.co/owner/loras/resolve/main/styles/ink.safetensors"
    assert (
        file_url("https://civitai.com/api/download/models/1") == "https://civitai.com/api/download/models/1"
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://example.com/x.safetensors", "only https links are fetched"),
        ("ftp://example.com/x", "only https links are fetched"),
        ("https://127.0.0.1/x", "private or local address"),
        ("https://[::1]/x", "private or local address"),
        ("https://169.254.169.254/latest/meta-data", "private or local address"),
        ("https://10.0.0.8/x", "private or local address"),
        ("https://localhost/x", "private or local address"),  # a name that resolves to this host
        ("https://user:secret@example.com/x", "user name or password"),
    ],
)
async def test_links_to_this_host_or_a_private_network_are_never_fetched(url: str, why: str) -> None:
    with pytest.raises(LinkRefused, match=why):
        await LinkFetcher(max_bytes=10**6).fetch(url)


def test_only_public_addresses_count_as_public() -> None:
    from bot.link_downloads import public_address

    assert public_address(ipaddress.ip_address("8.8.8.8"))
    for private in ("127.0.0.1", "10.1.2.3", "192.168.1.1", "169.254.169.254", "::1", "fd00::1", "224.0.0.1"):
        assert not public_address(ipaddress.ip_address(private))


async def test_a_file_is_fetched_with_its_name_through_redirects(server: str) -> None:
    assert await _local().fetch(f"{server}/lora") == ("hexy\\_v2.safetensors", LORA)
    assert (await _local().fetch(f"{server}/to-lora"))[1] == LORA


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("/loop", f"redirects more than {MAX_REDIRECTS} times"),
        ("/to-private", "10.1.2.3 is a private or local address"),
        ("/missing", "the link answered 404 Not Found"),
        ("/streamed", "larger than"),
        ("/announced", "larger than"),
    ],
)
async def test_bad_links_are_refused_in_one_line(server: str, path: str, why: str) -> None:
    with pytest.raises(LinkRefused, match=why):
        await _local(max_bytes=4096).fetch(server + path)


async def test_an_import_from_a_link_is_checked_like_an_upload(server: str, tmp_path: Path) -> None:
    from storage.files import FileStore

    class Jobs:  # stores files like the job service; no queue needed to build the spec
        async def store_files(self, blobs: list[bytes]) -> None:
            for blob in blobs:
                files.put(blob)

    files = FileStore(tmp_path / "files")
    service = LibraryService(None, files, Jobs(), links=_local())  # type: ignore[arg-type]
    spec = await service.import_link_spec("hexy", f"{server}/lora", model="tiny")
    assert (spec.adapter_kind, spec.tags, spec.name) == ("lora", "hexy", "hexy")
    assert files.exists(spec.file)
    with pytest.raises(AdapterFileError, match="pickle"):
        await service.import_link_spec("evil", f"{server}/pickle", model="tiny")
    assert len(list(files.root.glob("??/*"))) == 1  # the refused file was not stored
