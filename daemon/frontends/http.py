"""HTTP API of the control process (FastAPI). Binds 127.0.0.1:8750 unless configured.

The routes come from the command table (``frontends.commands``): each command with an HTTP route
takes its path parts and JSON body as its arguments, checked by the command's model. Errors come
back as ``{"error": "..."}`` with a 4xx/5xx status; the message names what was wrong and what to do.
Only the job event stream (server-sent events) is a route of its own.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse

from jackgen.common.errors import JackgenError
from jackgen.daemon.control.control import Control
from jackgen.daemon.frontends.commands import COMMANDS, JOB_EVENTS, Call, Command, check_args
from jackgen.daemon.frontends.metrics import CONTENT_TYPE as METRICS_TYPE
from jackgen.daemon.frontends.metrics import Metrics

log = logging.getLogger("jackgen.http")

MAX_BODY_BYTES = 64 * 1024
_INT = re.compile(r"^-?\d+$")


async def _body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if len(raw) > MAX_BODY_BYTES:
        raise JackgenError(f"request body too large ({len(raw)} bytes; limit {MAX_BODY_BYTES})", status=413)
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as e:
        raise JackgenError(f"request body is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise JackgenError("request body must be a JSON object")
    return data


def _endpoint(control: Control, cmd: Command):
    async def endpoint(request: Request) -> Any:
        body = await _body(request) if request.method in ("POST", "PUT") else {}
        path = {k: int(v) if k != "track" and _INT.match(v) else v for k, v in request.path_params.items()}
        query = dict(request.query_params) if request.method == "GET" else {}
        args = check_args(cmd, {**query, **body, **path}, "http", request.url.path)
        result = cmd.run(control, args, Call())
        if inspect.isawaitable(result):
            result = await result
        status = cmd.http_status_of(result) if cmd.http_status_of else cmd.http_status
        return JSONResponse(jsonable_encoder(result), status_code=status)

    endpoint.__name__ = cmd.name.replace(".", "_")
    endpoint.__doc__ = cmd.help
    return endpoint


def build_app(control: Control) -> FastAPI:
    app = FastAPI(title="jackgen", version="0.1.0")
    access = getattr(control, "access", None)

    @app.middleware("http")
    async def _token(request: Request, call_next):
        """With an API token set, every request carries ``Authorization: Bearer``."""
        if access is not None and access.token:
            if not access.bearer_ok(request.headers.get("authorization")):
                host = request.client.host if request.client else "?"
                access.refuse("http_token", f"HTTP {host}", f"{request.method} {request.url.path} without the API token")
                return JSONResponse({"error": "this jackgen needs its API token: send Authorization: Bearer TOKEN "
                                              "(control.token or JACKGEN_TOKEN)"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.exception_handler(JackgenError)
    async def _jackgen_error(request: Request, exc: JackgenError) -> JSONResponse:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        """A bug (or the disk) must still answer in JSON and leave a line in the log."""
        log.error("%s %s -> 500", request.method, request.url.path, exc_info=exc)
        return JSONResponse({"error": f"internal error: {type(exc).__name__}: {exc}"}, status_code=500)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.warning("%s %s -> 400: %s", request.method, request.url.path, msg)
        return JSONResponse({"error": msg}, status_code=400)

    @app.get(JOB_EVENTS)
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        """A job's events as server-sent events until it ends; a client that reconnects with
        ``Last-Event-ID`` gets only what came after."""
        await control.jobs.get(job_id)  # 404 before the stream starts
        last = request.headers.get("last-event-id")

        async def stream():
            it = control.jobs.events(job_id, last).__aiter__()
            pending = asyncio.ensure_future(it.__anext__())
            try:
                while True:
                    done, _ = await asyncio.wait({pending}, timeout=15.0)
                    if not done:
                        yield ": keep-alive\n\n"
                        continue
                    try:
                        eid, e = pending.result()
                    except StopAsyncIteration:
                        return
                    yield f"id: {eid}\nevent: {e['event']}\ndata: {json.dumps(e)}\n\n"
                    pending = asyncio.ensure_future(it.__anext__())
            finally:
                pending.cancel()

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    metrics = Metrics(control)
    if getattr(control, "jobs", None) is not None:
        control.jobs.listeners.append(metrics.on_job_event)

    @app.get("/metrics")
    async def prometheus_metrics() -> Response:
        """Prometheus text format: xruns, underruns per track, callback time, queue depths, jobs, restarts."""
        return Response(metrics.render(), media_type=METRICS_TYPE)

    for cmd in COMMANDS:
        if cmd.http is not None:
            method, route = cmd.http
            app.add_api_route(route, _endpoint(control, cmd), methods=[method], summary=cmd.help)
    return app
