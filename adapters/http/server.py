"""The app's small HTTP endpoint (aiohttp): liveness, readiness, metrics, and signed links to
images of the local-folder storage.

Liveness (``/healthz``) and readiness (``/readyz``) are each a set of named checks. A check
answers True when all is well, or False, or a short reason why not (a string): the reason goes
into the 503's JSON body, so an operator reads *why* without digging through logs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from aiohttp import web

log = logging.getLogger(__name__)

Check = Callable[[], "bool | str"]  # True: fine; False or a short reason (str): not fine


@runtime_checkable
class SignedFiles(Protocol):
    """What the endpoint serves links from (the local-folder storage)."""

    def verify(self, key: str, expires: int, signature: str) -> bool: ...

    async def get(self, key: str) -> bytes: ...


class HttpEndpoint:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        readiness: dict[str, Check] | None = None,
        liveness: dict[str, Check] | None = None,
        metrics: Callable[[], tuple[bytes, str]] | None = None,
        files: SignedFiles | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.readiness = readiness or {}
        self.liveness = liveness or {}  # the loops that must run: dead ones fail /healthz
        self.metrics = metrics
        self.files = files  # a LocalFolderStorage, when links point here
        self.app = web.Application()
        self.app.router.add_get("/healthz", self.healthz)
        self.app.router.add_get("/readyz", self.readyz)
        self.app.router.add_get("/metrics", self.metrics_handler)
        self.app.router.add_get("/files/{key:.+}", self.file_handler)
        self._runner: web.AppRunner | None = None

    def add_route(
        self, method: str, path: str, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> None:
        self.app.router.add_route(method, path, handler)

    async def start(self) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        if self.port == 0:  # tests ask for any free port
            self.port = self._runner.addresses[0][1]
        log.info("HTTP endpoint on %s:%d", self.host, self.port)

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()
            self._runner = None

    async def healthz(self, request: web.Request) -> web.Response:
        return _verdict(self.liveness, "alive", "dead")

    async def readyz(self, request: web.Request) -> web.Response:
        return _verdict(self.readiness, "ready", "unready")

    async def metrics_handler(self, request: web.Request) -> web.Response:
        if self.metrics is None:
            raise web.HTTPNotFound()
        body, content_type = self.metrics()
        return web.Response(body=body, headers={"Content-Type": content_type})

    async def file_handler(self, request: web.Request) -> web.StreamResponse:
        storage = self.files
        if storage is None:
            raise web.HTTPNotFound()
        key = request.match_info["key"]
        try:
            expires = int(request.query.get("exp", ""))
        except ValueError:
            raise web.HTTPForbidden(text="invalid link") from None
        if not storage.verify(key, expires, request.query.get("sig", "")):
            raise web.HTTPForbidden(text="invalid or expired link")
        try:
            data = await storage.get(key)
        except Exception:  # missing (KeyError) or unreadable: nothing to serve
            raise web.HTTPNotFound() from None
        return web.Response(body=data, content_type="image/png")


def _verdict(checks: dict[str, Check], good: str, bad: str) -> web.Response:
    """200 with every check true, else 503 with the reasons of those that failed."""
    results: dict[str, bool] = {}
    reasons: dict[str, str] = {}
    for name, check in checks.items():
        try:
            answer = check()
        except Exception as exc:  # a check that fails is a failed check
            answer = f"check failed ({type(exc).__name__})"
        fine = not isinstance(answer, str) and bool(answer)
        results[name] = fine
        if not fine:
            reasons[name] = answer if isinstance(answer, str) and answer else "failed"
    body: dict[str, object] = {"status": good if not reasons else bad, "checks": results}
    if reasons:
        body["reasons"] = reasons
        body["reason"] = "; ".join(f"{name}: {why}" for name, why in reasons.items())
    return web.json_response(body, status=503 if reasons else 200)
