"""HTTP API of the control process (FastAPI). Binds 127.0.0.1:8750 unless configured.

Errors come back as ``{"error": "..."}`` with a 4xx/5xx status; the message names
what was wrong and what to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse

from jackgen.common.errors import JackgenError
from jackgen.daemon.control.control import Control

log = logging.getLogger("jackgen.http")

MAX_BODY_BYTES = 64 * 1024


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


def _require(body: dict, key: str) -> Any:
    if key not in body:
        raise JackgenError(f"missing field '{key}'")
    return body[key]


def build_app(control: Control) -> FastAPI:
    app = FastAPI(title="jackgen", version="0.1.0")

    @app.exception_handler(JackgenError)
    async def _jackgen_error(request: Request, exc: JackgenError) -> JSONResponse:
        log.warning("%s %s -> %d: %s", request.method, request.url.path, exc.status, exc)
        return JSONResponse({"error": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        log.warning("%s %s -> 400: %s", request.method, request.url.path, msg)
        return JSONResponse({"error": msg}, status_code=400)

    @app.get("/health")
    async def health() -> dict:
        return control.health()

    @app.get("/api/status")
    async def status() -> dict:
        return control.status()

    @app.get("/api/tracks")
    async def tracks() -> list:
        return control.status()["tracks"]

    @app.post("/api/tracks/{track}/gain")
    async def gain(track: str, request: Request) -> dict:
        return control.set_gain(track, _require(await _body(request), "db"))

    @app.post("/api/tracks/{track}/pan")
    async def pan(track: str, request: Request) -> dict:
        return control.set_pan(track, _require(await _body(request), "pan"))

    @app.post("/api/tracks/{track}/mute")
    async def mute(track: str, request: Request) -> dict:
        return control.set_flag("mute", track, _require(await _body(request), "on"))

    @app.post("/api/tracks/{track}/solo")
    async def solo(track: str, request: Request) -> dict:
        return control.set_flag("solo", track, _require(await _body(request), "on"))

    @app.post("/api/tracks/{track}/load")
    async def load(track: str, request: Request) -> dict:
        return await control.load(track, _require(await _body(request), "file"))

    @app.post("/api/tracks/{track}/play")
    async def play(track: str, request: Request) -> dict:
        body = await _body(request)
        return await control.play(track, body.get("file"), body.get("at", "now"))

    @app.post("/api/tracks/{track}/stop")
    async def stop(track: str, request: Request) -> dict:
        body = await _body(request)
        return await control.stop_track(track, body.get("at", "now"))

    @app.get("/api/midi/map")
    async def midi_map() -> dict:
        return control.midi_map()

    @app.post("/api/midi/learn")
    async def midi_learn(request: Request) -> dict:
        body = await _body(request)
        return await control.midi_learn(body.get("action"), body.get("track"), body.get("gate", False),
                                        float(body.get("timeout", 30.0)), body.get("plugin"), body.get("param"))

    @app.post("/api/tempo")
    async def tempo(request: Request) -> dict:
        return control.set_tempo(_require(await _body(request), "bpm"))

    @app.get("/api/master")
    async def master() -> dict:
        return control.master_info()

    @app.post("/api/master")
    async def master_set(request: Request) -> dict:
        body = await _body(request)
        return control.set_master(body.get("gain_db"), body.get("eq"))

    @app.get("/api/tracks/{track}/chain")
    async def chain(track: str) -> dict:
        return control.chain_list(track)

    @app.post("/api/tracks/{track}/chain/add")
    async def chain_add(track: str, request: Request) -> dict:
        body = await _body(request)
        return await control.chain_add(track, _require(body, "plugin"), body.get("params"), body.get("index"))

    @app.post("/api/tracks/{track}/chain/remove")
    async def chain_remove(track: str, request: Request) -> dict:
        return await control.chain_remove(track, _require(await _body(request), "index"))

    @app.post("/api/tracks/{track}/chain/move")
    async def chain_move(track: str, request: Request) -> dict:
        body = await _body(request)
        return await control.chain_move(track, _require(body, "index"), _require(body, "to"))

    @app.post("/api/tracks/{track}/chain/{index}/bypass")
    async def chain_bypass(track: str, index: int, request: Request) -> dict:
        return await control.chain_bypass(track, index, _require(await _body(request), "on"))

    @app.post("/api/tracks/{track}/chain/{index}/param")
    async def chain_param(track: str, index: int, request: Request) -> dict:
        body = await _body(request)
        return await control.chain_param(track, index, _require(body, "name"), _require(body, "value"))

    @app.post("/api/music-generation", status_code=202)
    async def music_generation(request: Request) -> dict:
        job = control.jobs.submit(await _body(request))
        return {"job_id": job.id, "status": job.status, "takes": job.takes, "seed": job.spec.seed}

    @app.get("/api/jobs")
    async def jobs() -> list:
        return [j.public() for j in list(control.jobs.jobs.values())[-100:]]

    @app.get("/api/jobs/{job_id}")
    async def job(job_id: str) -> dict:
        return control.jobs.get(job_id).public()

    @app.delete("/api/jobs/{job_id}")
    async def cancel_job(job_id: str) -> dict:
        return (await control.jobs.cancel(job_id)).public()

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        job = control.jobs.get(job_id)
        q = control.jobs.subscribe(job)

        async def stream():
            try:
                while True:
                    try:
                        e = await asyncio.wait_for(q.get(), 15.0)
                    except asyncio.TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    yield f"event: {e['event']}\ndata: {json.dumps(e)}\n\n"
                    if e["event"] in ("done", "failed", "cancelled"):
                        return
            finally:
                job.listeners.discard(q)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache"})

    @app.post("/api/sync")
    async def sync() -> dict:
        return {"frame_time": await control.sync()}

    return app
