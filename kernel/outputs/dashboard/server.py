"""The dashboard's web server (aiohttp): the page, its data as JSON, and live deltas as
server-sent events, for every experiment under a folder.

Each experiment a page watches is read by one task, ``POLL`` seconds apart (a file's size is
all a look costs); what changed goes to every page watching it, encoded once. A page gets a
whole snapshot first, then deltas; a page that falls behind is dropped and its browser
reconnects (EventSource does) to a fresh snapshot, so a slow tab never holds memory here.

Served on loopback, only requests addressed to loopback are answered (a web page elsewhere
cannot reach it by DNS rebinding). Bound to any other address, it asks for the experiment's
token first (a form, then an HttpOnly cookie; or ``Authorization: Bearer TOKEN`` for scripts).
"""
from __future__ import annotations

import asyncio
import hmac
import importlib.util
import ipaddress
import os
import secrets
from pathlib import Path
from typing import Any, Callable

import orjson
from aiohttp import web

from ... import records
from .experiment import Experiment

POLL = 0.1
BACKLOG = 2000  # deltas queued for one page before it is dropped (and reconnects)
PING = 15.0
STATIC = Path(__file__).parent / "static"
COOKIE = "lagom_dashboard"
# Scripts from this server only, never inline ones: the page puts what users wrote (parameters,
# logs, errors) in as text. plotly.js's WebGL plots (parallel coordinates) compile their shaders
# with Function(), hence 'unsafe-eval'; it draws its SVG with inline styles, hence those.
HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
                               "'unsafe-inline'; img-src 'self' data: blob:; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
}


def plotly_js() -> Path:
    """plotly.js as the plotly package ships it (nothing is fetched from the network)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('the dashboard needs plotly and aiohttp: pip install "lagom-kernel[dashboard]"')
    return Path(list(spec.submodule_search_locations)[0]) / "package_data" / "plotly.min.js"


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


class Folders:
    """The experiments under a folder of experiments (or the one experiment a folder is)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.watches: dict[str, Watch] = {}

    def names(self) -> list[str]:
        if (self.path / records.JOURNAL).exists():
            return [self.path.name]
        try:
            return sorted(p.parent.name for p in self.path.glob(f"*/{records.JOURNAL}"))
        except OSError:
            return []

    def watch(self, name: str) -> "Watch | None":
        w = self.watches.get(name)
        if w is None and name in self.names():
            folder = self.path if (self.path / records.JOURNAL).exists() else self.path / name
            w = self.watches[name] = Watch(Experiment(folder))
        return w


class Watch:
    """One experiment and the pages watching it."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.pages: set[asyncio.Queue] = set()
        self._task: asyncio.Task | None = None
        self._snapshot: tuple[int, bytes] = (-1, b"")  # the last one encoded, and the version it shows

    def step(self) -> None:
        """Read what the folder gained and tell every page."""
        delta = self.experiment.update()
        if delta is None or not self.pages:
            return
        data = b"data: " + orjson.dumps(self.experiment.frame(delta), option=orjson.OPT_NON_STR_KEYS) + b"\n\n"
        for page in list(self.pages):
            if page.qsize() >= BACKLOG:
                self.pages.discard(page)
                page.put_nowait(None)  # too far behind: it reconnects to a fresh snapshot
            else:
                page.put_nowait(data)

    def subscribe(self) -> tuple[asyncio.Queue, bytes]:
        self.step()  # pages already watching get what came before this one's snapshot
        page: asyncio.Queue = asyncio.Queue()
        self.pages.add(page)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._follow())
        if self._snapshot[0] != self.experiment.version:  # 0.5 s at 100,000 trials: once per version
            snap = orjson.dumps(self.experiment.snapshot(), option=orjson.OPT_NON_STR_KEYS)
            self._snapshot = (self.experiment.version, b"data: " + snap + b"\n\n")
        return page, self._snapshot[1]

    def unsubscribe(self, page: asyncio.Queue) -> None:
        self.pages.discard(page)

    async def _follow(self) -> None:
        while self.pages:
            await asyncio.sleep(POLL)
            self.step()


class Dashboard:
    def __init__(self, path: Path, token: str | None = None, loopback: bool = True):
        self.folders, self.token, self.loopback = Folders(path), token, loopback
        self._sessions: set[str] = set()

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._guard])
        app.router.add_get("/", self._index)
        app.router.add_post("/login", self._login)
        app.router.add_get("/static/plotly.min.js", self._plotly)
        app.router.add_get("/favicon.ico", lambda request: web.Response(status=204))
        app.router.add_static("/static/", STATIC)
        app.router.add_get("/api/experiments", self._experiments)
        app.router.add_get("/api/events", self._events)  # the newest experiment's
        app.router.add_get("/api/e/{name}/events", self._events)
        app.router.add_get("/api/e/{name}/trial/{trial}", self._trial)
        app.router.add_get("/api/e/{name}/importance", self._importance)
        app.on_response_prepare.append(self._headers)
        return app

    # -- who may look ------------------------------------------------------------------
    @web.middleware
    async def _guard(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        if self.loopback and not is_loopback((request.url.host or "").strip("[]")):
            return web.Response(status=403, text="this dashboard answers requests to loopback only\n")
        if self.token is None or request.path in ("/login", "/static/dash.css") or self._allowed(request):
            return await handler(request)
        if request.path.startswith("/api/"):
            return web.json_response({"error": "this dashboard needs the experiment's token: log in at /, "
                                               "or send Authorization: Bearer TOKEN"}, status=401)
        return self._login_page(401)

    def _allowed(self, request: web.Request) -> bool:
        if request.cookies.get(COOKIE) in self._sessions:
            return True
        given = request.headers.get("Authorization", "")
        return given.startswith("Bearer ") and self._right(given[7:])

    def _right(self, token: str) -> bool:
        return self.token is not None and hmac.compare_digest(token.strip().encode(), self.token.encode())

    async def _login(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if self.token is None or not self._right(str(form.get("token", ""))):
            await asyncio.sleep(0.5)  # a guess costs time
            return self._login_page(403, "That is not this experiment's token.")
        session = secrets.token_urlsafe(32)
        self._sessions.add(session)
        response = web.HTTPSeeOther("/")
        response.set_cookie(COOKIE, session, httponly=True, samesite="Strict")
        return response

    def _login_page(self, status: int, message: str = "") -> web.Response:
        text = (STATIC / "login.html").read_text(encoding="utf-8").replace("{message}", message)
        return web.Response(status=status, text=text, content_type="text/html")

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(HEADERS)

    # -- the page and its data ------------------------------------------------------------
    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html")

    async def _plotly(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(plotly_js(), headers={"Cache-Control": "max-age=86400"})

    def _newest_first(self) -> list[Watch]:
        """Every experiment under the folder, read up to now, the newest first (the list's order)."""
        found = [w for w in map(self.folders.watch, self.folders.names()) if w is not None]
        for w in found:
            w.step()  # one that appeared since the last look has been read
        return sorted(found, key=lambda w: -(w.experiment.started_at or 0))

    def _newest(self) -> Watch:
        """The experiment a page opens when it names none: the one the list shows first."""
        found = self._newest_first()
        if not found:
            raise web.HTTPNotFound(text=f"no experiment under {self.folders.path} yet")
        return found[0]

    async def _experiments(self, request: web.Request) -> web.Response:
        found = [w.experiment.overview() for w in self._newest_first()]
        return web.Response(body=orjson.dumps({"root": str(self.folders.path), "experiments": found}),
                            content_type="application/json")

    def _watch(self, request: web.Request) -> Watch:
        if "name" not in request.match_info:
            return self._newest()
        w = self.folders.watch(request.match_info["name"])
        if w is None:
            raise web.HTTPNotFound(text=f"no experiment {request.match_info['name']!r} under {self.folders.path}")
        return w

    async def _events(self, request: web.Request) -> web.StreamResponse:
        w = self._watch(request)
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        page, snapshot = w.subscribe()
        try:
            await response.write(snapshot)
            while True:
                try:
                    data = await asyncio.wait_for(page.get(), PING)
                except asyncio.TimeoutError:
                    data = b": ping\n\n"  # also finds pages that went away
                if data is None:
                    break
                await response.write(data)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            w.unsubscribe(page)
        return response

    async def _trial(self, request: web.Request) -> web.Response:
        w = self._watch(request)
        try:
            trial = w.experiment.trial(int(request.match_info["trial"]))
        except ValueError:
            trial = None
        if trial is None:
            raise web.HTTPNotFound(text="no such trial")
        return web.Response(body=orjson.dumps(trial, option=orjson.OPT_NON_STR_KEYS), content_type="application/json")


    async def _importance(self, request: web.Request) -> web.Response:
        """Which hyperparameters mattered so far, at a budget (``?budget=``; default the largest
        any finished trial ran): ``{"rows": [...]}`` or ``{"note": why there are none yet}``."""
        w = self._watch(request)
        budget = request.query.get("budget")
        try:
            answer = w.experiment.importance(float(budget) if budget not in (None, "", "null") else None)
        except ValueError:
            raise web.HTTPBadRequest(text="budget must be a number") from None
        return web.Response(body=orjson.dumps(answer), content_type="application/json")


async def serve(path: Path, host: str = "127.0.0.1", port: int = 8470, token: str | None = None,
                announce: Callable[[str], Any] = print, until: "asyncio.Future | None" = None) -> None:
    """Serve the dashboard of the experiments under ``path`` until ``until`` is done (or forever)."""
    plotly_js()  # a missing extra fails here, with the command that installs it
    loopback = is_loopback(host)
    if not loopback and not token:
        raise SystemExit(f"lagom: error: a dashboard on {host} (not loopback) needs the experiment's token: set "
                         f"$LAGOM_TOKEN or pass --token-file FILE")
    board = Dashboard(path, token=None if loopback else token, loopback=loopback)
    for name in board.folders.names():  # read every journal once now: the first page is as quick as the next
        board.folders.watch(name).step()
    runner = web.AppRunner(board.app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0]
    shown = f"[{bound[0]}]" if ":" in bound[0] else bound[0]
    announce(f"http://{'127.0.0.1' if shown in ('0.0.0.0', '[::]') else shown}:{bound[1]}/")
    try:
        await (until if until is not None else asyncio.get_running_loop().create_future())
    finally:
        await runner.cleanup()


def token_from(token_file: str | None) -> str | None:
    """The token from ``--token-file`` (readable by its owner alone) or ``$LAGOM_TOKEN``."""
    from ...agent.cli import TOKEN_ENV

    if token_file:
        mode = os.stat(token_file).st_mode
        if mode & 0o077:
            raise SystemExit(f"lagom: error: {token_file} can be read by other users; chmod 600 {token_file}")
        return Path(token_file).read_text(encoding="utf-8").strip()
    return os.environ.get(TOKEN_ENV) or None
