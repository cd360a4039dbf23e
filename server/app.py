"""make_app(): the server's only route table; and `Server`, which owns one server's resources and lifecycle."""

from __future__ import annotations

import asyncio
import logging
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import tornado.netutil
import tornado.web

from lockr_local import web
from lockr_local.config import Settings
from lockr_local.server.auth import Authenticator
from lockr_local.server.backfill import DigestBackfill
from lockr_local.server.bodybudget import BodyBudget
from lockr_local.server.blobstore import HelperThreads, make_blob_store
from lockr_local.server.cluster import (
    join_nodes, one_node_at_a_time, shared_secret, start_alone, try_lock_job, unlock_job,
)
from lockr_local.server.db import Database
from lockr_local.server.faults import Faults
from lockr_local.server.filebytes import FileBytes
from lockr_local.server.fsck import reap_orphans
from lockr_local.server import guests
from lockr_local.server import trash as trash_rows
from lockr_local.server.idempotency import IdempotencyKeys
from lockr_local.server.ingest import Ingest
from lockr_local.server.handlers import (
    accounts, dav, docs, downloads, files, links, metrics_page, pages, sessions, tokens, trash, tus, uploads,
)
from lockr_local.server.handlers.base import NotFoundHandler, ServerContext
from lockr_local.server.handlers.watchdog import BodyWatchdogs
from lockr_local.server.httpserver import SMALL_READ, LockrHTTPServer
from lockr_local.server.accesslog import bytes_sent, log_access
from lockr_local.server.metrics import Metrics
from lockr_local.server.models import is_postgresql, refuse_unfinished_migration
from lockr_local.server.private import make_private_dir
from lockr_local.server.resumable import ResumableUploads, reap_sessions_forever
from lockr_local.server.security import Signer, existing_secret, load_or_create_secret
from lockr_local.server.service import Service
from lockr_local.server.retention import RetentionSweep
from lockr_local.server.sessions import protect_raw_session_keys

FILE_ID = r"([0-9a-fA-F]{1,64})"
REGION = r"([a-z0-9][a-z0-9-]{0,62})"
WEB_ROOT = Path(__file__).resolve().parent


def build_context(settings: Settings) -> ServerContext:
    """Opens the store named by the settings: data folder, database, blob regions, secret."""
    data_dir = make_private_dir(Path(settings.data_dir))
    db = Database(settings.database_url)
    try:
        db.run_sync(refuse_unfinished_migration)
    except BaseException:
        db.close()
        raise
    blobs = make_blob_store(settings)
    signer = Signer(signing_secret(settings, data_dir, db))
    db.run_sync(protect_raw_session_keys, signer)
    faults = Faults(settings.crash_point)
    service = Service(settings, blobs, signer, faults)
    auth = Authenticator(settings, db, service)
    io = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lockr-io")
    # Threads appear on first use and end in close_context: this server's, none left behind by it.
    threads = HelperThreads(hashing=ThreadPoolExecutor(max_workers=2, thread_name_prefix="lockr-hash"),
                            flushing=ThreadPoolExecutor(max_workers=2, thread_name_prefix="lockr-flush"), io=io,
                            uploads=ThreadPoolExecutor(max_workers=8, thread_name_prefix="lockr-s3-part"))
    blobs.use_threads(threads)
    backfill = DigestBackfill(db, blobs)
    metrics = Metrics()
    bodies = BodyBudget(settings.upload_buffers)
    ingest = Ingest(settings, db, blobs, io, faults, backfill, threads.hashing, metrics, bodies)
    uploads = ResumableUploads(db, service, blobs, io, ingest)
    return ServerContext(settings=settings, db=db, service=service, auth=auth, blobs=blobs, signer=signer,
                         io=io, threads=threads, faults=faults, ingest=ingest, files=FileBytes(blobs, db, io),
                         sessions=uploads, backfill=backfill,
                         watchdogs=BodyWatchdogs(settings.body_idle_timeout, settings.min_body_rate),
                         metrics=metrics, bodies=bodies, idempotency=IdempotencyKeys(db, settings.idempotency_ttl))


def signing_secret(settings: Settings, data_dir: Path, db: Database) -> bytes:
    """The secret that signs links, cookies and stored key hashes: `secret_key` when set; else, on
    PostgreSQL, one kept in the database so that every node sharing it verifies what another signed
    (seeded from this data folder's secret.key when a single node made one before); else secret.key."""
    if settings.secret_key or not is_postgresql(settings.database_url):
        return load_or_create_secret(settings.secret_key, data_dir)
    return db.run_sync(shared_secret, existing_secret(data_dir))


def make_app(ctx: ServerContext) -> tornado.web.Application:
    """The route table of the whole server."""
    deps = {"ctx": ctx}
    routes = [
        (r"/healthz", accounts.HealthHandler, deps),
        (r"/metrics", metrics_page.MetricsHandler, deps),
        (r"/api/v1/openapi.json", docs.OpenApiHandler, deps),
        (r"/api/v1/account", accounts.AccountHandler, deps),
        (r"/api/v1/login", accounts.LoginHandler, deps),
        (r"/api/v1/upload", uploads.DirectUploadHandler, deps),
        (r"/api/v1/upload/session", sessions.CreateSessionHandler, deps),
        (r"/api/v1/upload/session/([^/]+)", sessions.SessionUploadHandler, deps),
        (r"/api/v1/tus/?", tus.TusCreationHandler, deps),
        (r"/api/v1/tus/([^/]+)", tus.TusUploadHandler, deps),
        (r"/api/v1/files", files.FilesHandler, deps),
        (r"/api/v1/files/register", files.RegisterHandler, deps),
        (rf"/api/v1/files/{FILE_ID}/key", files.FileKeyHandler, deps),
        (rf"/api/v1/files/{FILE_ID}", files.FileHandler, deps),
        (rf"/api/v1/download/{REGION}/{FILE_ID}(?:/.*)?", downloads.DownloadHandler, deps),
        (rf"/api/v1/files/{FILE_ID}/link", links.FileLinkHandler, deps),
        (r"/api/v1/trash", trash.TrashHandler, deps),
        (rf"/api/v1/trash/{FILE_ID}/restore", trash.TrashRestoreHandler, deps),
        (rf"/api/v1/trash/{FILE_ID}", trash.TrashFileHandler, deps),
        (r"/api/v1/tokens", tokens.TokensHandler, deps),
        (r"/api/v1/tokens/([0-9]+)", tokens.TokenHandler, deps),
        (r"/api/v1/account/password", tokens.PasswordHandler, deps),
        (r"/", pages.HomeHandler, deps),
        (r"/account", pages.AccountPageHandler, deps),
        (r"/account/signup", pages.SignupHandler, deps),
        (r"/account/login", pages.LoginPageHandler, deps),
        (r"/account/logout", pages.LogoutHandler, deps),
        (r"/files", pages.FilesPageHandler, deps),
        (r"/upload", pages.GuestUploadPageHandler, deps),
        (r"/download/([^/]+)/?", pages.DownloadPageHandler, deps),
        (r"/dav(?:/.*)?", dav.DavHandler, deps),
        web.assets_route(),  # the stylesheet the desktop app's pages share (lockr_local/web)
    ]
    ctx.metrics.name_routes(routes)
    return tornado.web.Application(
        routes,
        default_handler_class=NotFoundHandler,
        default_handler_args=deps,
        log_function=log_request,
        lockr_metrics=ctx.metrics,
        lockr_body_budget=ctx.bodies,
        compress_response=False,
        lockr_settings=ctx.settings,
        # The web pages (handlers/pages.py): templates, their small scripts (never stored files), the
        # stylesheet and page head shared with the desktop app's pages (lockr_local/web, under /assets/),
        # cookie sessions signed with a key derived from the server secret, XSRF-checked forms.
        template_loader=web.SharedLoader(str(WEB_ROOT / "templates")),
        static_path=str(WEB_ROOT / "static"),
        cookie_secret=ctx.signer.subkey("cookie"),
        xsrf_cookies=True,
        xsrf_cookie_kwargs={"httponly": True, "samesite": "Strict"},
    )


def log_request(handler: tornado.web.RequestHandler) -> None:
    """Once per answered request: its access log line (accesslog.py) and its counts (metrics.py)."""
    settings: Settings = handler.application.settings["lockr_settings"]
    metrics: Metrics = handler.application.settings["lockr_metrics"]
    metered = getattr(handler.request.connection, "lockr_metered", None)
    if metered is not None:
        metered.answered()
    metrics.answered(type(handler), handler.request.method, handler.get_status(), bytes_sent(handler))
    log_access(handler, settings.access_log_format)


# Body bytes are handed to data_received in chunks of up to 1 MiB: fewer callbacks per GiB uploaded.
BODY_CHUNK = 1024 * 1024


def make_http_server(app: tornado.web.Application) -> LockrHTTPServer:
    """JSON bodies are capped at 1 MiB; streaming handlers lift the cap and enforce the plan limits.
    Headers must arrive within header_timeout (slowloris); bodies are watched by BodyWatchdog.
    Requests Tornado cannot parse get the JSON 400 too (see malformed.py)."""
    settings: Settings = app.settings["lockr_settings"]
    raise_open_file_limit()
    server = LockrHTTPServer(app, max_body_size=1024 * 1024, chunk_size=BODY_CHUNK,
                             idle_connection_timeout=settings.header_timeout, decompress_request=False)
    server.metrics = app.settings["lockr_metrics"]
    server.budget = app.settings["lockr_body_budget"]
    server.read_chunk_size = SMALL_READ  # request heads; each body's reads are sized by its head (httpserver.py)
    return server


def raise_open_file_limit() -> None:
    """Many idle connections must not exhaust the default 1024 descriptors: use the hard limit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if hard == resource.RLIM_INFINITY or hard > soft:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 1_048_576) if hard != resource.RLIM_INFINITY
                                                        else 1_048_576, hard))
    except (ImportError, ValueError, OSError):
        pass


def startup_maintenance(ctx: ServerContext) -> None:
    """Reaps what a crash may have left: temp files, bytes without a row, reservations of direct uploads.

    With other nodes running on the same PostgreSQL database (cluster.py), their uploads are in flight:
    the clean-up then runs only if no other node is doing the reaper's work (its job lock), leaves objects
    younger than session_expiry (no write lives longer: the reaper aborts those) and leaves reservations
    as they are (each transaction keeps them equal to the open sessions; recomputing them would lock every
    account row while other nodes write). A node that starts alone cleans up everything."""
    log = logging.getLogger("lockr.server")
    alone = ctx.db.run_sync(start_alone)
    try:
        if alone:
            clean_up_after_a_crash(ctx, grace=0.0)
            ctx.db.run_sync(ctx.service.reconcile_reservations)
            return
        ctx.db.run_sync(join_nodes, False)
        if not ctx.db.run_sync(try_lock_job, "reaper"):
            log.info("start-up clean-up skipped: another node is reaping")
            return
        try:
            log.info("other nodes are running: the start-up clean-up leaves objects younger than session_expiry "
                     "and reservations as they are")
            clean_up_after_a_crash(ctx, grace=float(ctx.settings.session_expiry))
        finally:
            ctx.db.run_sync(unlock_job, "reaper")
    finally:
        if alone:
            ctx.db.run_sync(join_nodes, True)


def clean_up_after_a_crash(ctx: ServerContext, grace: float) -> None:
    """Temp files, expired sessions and partial files no session owns, expired guest uploads, and objects
    no row names (stored more than `grace` seconds ago)."""
    removed = ctx.blobs.clear_temp()
    ctx.sessions.reap_at_startup()  # first: objects of sessions reaped here are orphans below
    guest_expiry(ctx).reap_at_startup()
    trash_purge(ctx).reap_at_startup()
    orphans = ctx.db.run_sync(reap_orphans, ctx.blobs, grace)
    if removed or orphans:
        logging.getLogger("lockr.server").info(
            "start-up clean-up: removed %d temp files and %d unlisted objects left by a crash", removed, orphans)


def guest_expiry(ctx: ServerContext) -> RetentionSweep:
    return RetentionSweep(ctx.db, ctx.blobs, ctx.io, ctx.settings.guest_retention, take_expired=guests.take_expired,
                          described="guest uploads older than guest_retention", zero_keeps=True)


def trash_purge(ctx: ServerContext) -> RetentionSweep:
    return RetentionSweep(ctx.db, ctx.blobs, ctx.io, ctx.settings.trash_retention, take_expired=trash_rows.take_expired,
                          described="files that were in the trash longer than trash_retention", zero_keeps=False)


def start_background_tasks(ctx: ServerContext) -> list[asyncio.Task[None]]:
    """Background work while serving: the reaper (every `reap_interval` seconds: expired upload sessions,
    then guest uploads past `guest_retention`, then files in the trash past `trash_retention`, then expired
    Idempotency-Keys) and the SHA-1/MD5 backfill of
    big API uploads. Nodes sharing a PostgreSQL database take turns: each sweep is done by one node at a
    time (cluster.py)."""
    loop = asyncio.get_running_loop()
    ctx.backfill.start()
    sweeps = [one_node_at_a_time(ctx.db, "reaper", sweep)
              for sweep in (ctx.sessions.reap, guest_expiry(ctx).reap, trash_purge(ctx).reap,
                            ctx.idempotency.reap)]
    reaper = reap_sessions_forever(sweeps, ctx.settings.reap_interval)
    return [loop.create_task(reaper, name="lockr-reaper")]


async def finish_background_work(ctx: ServerContext, timeout: float = 5.0) -> None:
    """At shutdown, once connections are closed: upload chunks cut by the shutdown record what they
    stored, so a client resumes after the restart without re-sending it."""
    await ctx.sessions.settle(timeout)


def close_context(ctx: ServerContext) -> None:
    ctx.backfill.close()
    ctx.auth.close()
    ctx.threads.shutdown()
    ctx.db.close()


class Server:
    """One lockr-local server: its context (the database and its `lockr-db` thread, the I/O, hashing,
    flush and KDF threads, the blob store, the backfill), its HTTP server and listening sockets, its background tasks,
    and the order they stop in. `lockr-local serve` and the tests' ThreadedServer both run it:

        server = Server(settings)            # opens the store and reaps what a crash left
        port = server.listen(0, "127.0.0.1")  # in the IOLoop's thread; 0 picks a free port
        server.start()                       # background tasks, on the running loop
        await server.stop()                  # no new connections, open ones closed, cut chunks recorded
        server.close()                       # the threads and the database

    Servers in one process are independent (models.ThreadBoundDatabase binds each database to its own
    thread).
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.ctx = build_context(settings)
        try:
            startup_maintenance(self.ctx)
            self.http = make_http_server(make_app(self.ctx))
        except BaseException:
            close_context(self.ctx)
            raise
        self.port: int | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def listen(self, port: int, address: str) -> int:
        """Binds `address:port` (0: any free port) and serves on it; returns the port bound."""
        return self.serve_on(tornado.netutil.bind_sockets(port, address=address))

    def serve_on(self, sockets: list[socket.socket]) -> int:
        """Serves on sockets bound beforehand (`serve` binds before it creates a store); returns the port."""
        self.http.add_sockets(sockets)
        self.port = int(sockets[0].getsockname()[1])
        return self.port

    def start(self) -> None:
        """Starts the background tasks on the running loop (start_background_tasks)."""
        self._tasks = start_background_tasks(self.ctx)

    async def stop(self, timeout: float = 5.0) -> None:
        """Stops serving: background tasks cancelled, listening stopped, open connections closed (within
        `timeout`, else asyncio.TimeoutError), then cut upload chunks record what they stored."""
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        self.http.stop()
        await asyncio.wait_for(self.http.close_all_connections(), timeout=timeout)
        await finish_background_work(self.ctx)

    def close(self) -> None:
        """Shuts down the server's threads and closes its database; after stop(), off the loop."""
        close_context(self.ctx)
