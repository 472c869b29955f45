"""The portal over a real HTTP server and engine (``tests.http_support.HttpEnv``), with the portal's
collaborators built by the composition root's own functions (``gateway.daemon.portal_context``,
``return_file_reader``): Check a file runs in the test's validation pool, return flows are read from
``<root>/sftp`` (``FOLDERS``), and an httpx client logs in through the log-in form like a browser."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from engine.cpu_pool import CpuPool
from engine.model import Limits
from engine.services.check import CheckService
from engine.services.return_files import ReturnFiles
from engine.technical import DEFAULT_RULES
from gateway.daemon import portal_context, return_file_reader
from gateway.http.portal.context import PORTAL
from gateway.settings import PortalSection
from gateway.sftp_paths import PartnerFolders
from tests.http_support import HttpEnv

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
MANAGER = ("manager", "demo-manager-password")
VIEWER = ("viewer", "demo-viewer-password")


async def start(
    root: Path, pool: CpuPool, *, workers: bool = False, limits: Limits | None = None, **portal: object
) -> HttpEnv:
    """An ``HttpEnv`` serving the portal; ``portal`` overrides ``[portal]`` settings."""
    env = await HttpEnv.start(root, pool, workers=workers, limits=limits)
    store = env.harness.store
    env.services.extra[PORTAL] = portal_context(
        store,
        PortalSection(**portal),  # type: ignore[arg-type]
        checks=CheckService(store, pool.run, env.harness.limits, DEFAULT_RULES),
        return_files=ReturnFiles(store, return_file_reader(folders(root))),
    )
    return env


def folders(root: Path) -> PartnerFolders:
    """Where the test's return flows are written and read (the daemon's ``<data>/sftp``)."""
    return PartnerFolders(root / "sftp")


def csrf_of(page: str) -> str:
    found = CSRF.search(page)
    assert found, "the page has no CSRF field"
    return found.group(1)


async def login(client: httpx.AsyncClient, login: str, password: str) -> httpx.Response:
    """GET the log-in page (its CSRF cookie and field), then POST the form; the response is not followed."""
    page = await client.get("/login")
    return await client.post(
        "/login", data={"csrf_token": csrf_of(page.text), "login": login, "password": password, "next": "/"}
    )


@contextlib.asynccontextmanager
async def logged_in(env: HttpEnv, who: tuple[str, str] = MANAGER, **kwargs: object) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a live session of ``who``."""
    headers = kwargs.pop("headers", {})
    async with env.client(**kwargs) as client:  # type: ignore[arg-type]
        client.headers.update(headers)  # type: ignore[arg-type]
        response = await login(client, *who)
        assert response.status_code == 303, response.text
        yield client
