"""A training run's terminal output: bytes from an offset, the whole file, or a live stream of server-sent events.

Viewers fetch bytes 0..N and then stream from N (or resume from the last event id): the log file is the one truth,
so nothing is lost or shown twice, and the server can restart mid-run.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import FileResponse
from sse_starlette.sse import EventSourceResponse
from starlette.concurrency import run_in_threadpool

from tunelab.api.deps import RunId, ServicesDep
from tunelab.api.openapi import COMMON, errors
from tunelab.api.routing import StrictJSONRoute, blocking
from tunelab.domain.runs import TERMINAL_RUN, Run
from tunelab.services import Services

router = APIRouter(prefix="/api/runs", tags=["logs"], route_class=StrictJSONRoute)
MAX_CHUNK = 4 * 1024 * 1024
STREAM_CHUNK = 256 * 1024
Offset = Annotated[int, Query(ge=0, le=2**62, description="The byte to start from.")]
_BYTES: dict[int | str, dict[str, Any]] = {200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                "description": "The log's bytes from `offset` (or its last `tail` bytes).",
                "headers": {"X-Log-Offset": {"description": "Where the bytes sent end: the next offset to ask for.",
                                             "schema": {"type": "integer"}},
                            "X-Log-Size": {"description": "The log's size now.", "schema": {"type": "integer"}},
                            "X-Run-Status": {"description": "The run's status.", "schema": {"type": "string"}}}}}  # fmt: skip
_STREAM: dict[int | str, dict[str, Any]] = {200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                 "description": "`data`: base64 of a chunk, `id`: the offset where it ends; a last `end` event whose "
                                "data is {status, exit_code}."}}  # fmt: skip


@router.get("/{run_id}/logs", response_class=Response, responses={**errors(*COMMON, 404), **_BYTES})
async def get_log(
    run_id: RunId,
    services: ServicesDep,
    offset: Offset = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_CHUNK, description="At most this many bytes.")] = 1024 * 1024,
    tail: Annotated[int | None, Query(ge=1, le=MAX_CHUNK, description="The last this many bytes instead.")] = None,
    download: Annotated[bool, Query(description="The whole log as a file to save.")] = False,
) -> Response:
    """A run's raw terminal output (colours, carriage returns and all) from `offset`, seeking rather than reading
    from the start, so a 1 GB log answers as fast as a small one; 404 `log_not_found` for an outside run."""
    if download:
        run, path = await blocking(services.training.log_file, run_id)
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        return FileResponse(path, media_type="application/octet-stream", filename=f"{run.name}-{run.id}.log")
    if tail is not None:
        _, _, size = await blocking(services.training.read_log, run_id, 0, 0)
        offset = max(0, size - tail)
        limit = tail
    run, data, size = await blocking(services.training.read_log, run_id, offset, limit)
    headers = {"X-Log-Offset": str(offset + len(data)), "X-Log-Size": str(size), "X-Log-Start": str(offset),
               "X-Run-Status": run.status.value}  # fmt: skip
    return Response(content=data, media_type="application/octet-stream", headers=headers)


@router.get("/{run_id}/logs/stream", response_class=Response, responses={**errors(*COMMON, 404), **_STREAM})
async def stream_log(
    run_id: RunId,
    services: ServicesDep,
    offset: Offset = 0,
    last_event_id: Annotated[str | None, Header(description="Resume after this event (its end offset).")] = None,
) -> EventSourceResponse:
    """The run's output live, from `offset` (or the `Last-Event-ID` a reconnecting client sends) to its end."""
    if last_event_id is not None and last_event_id.isdigit():
        offset = int(last_event_id)
    await blocking(services.training.log_file, run_id)  # 404 before the stream begins
    return EventSourceResponse(_events(services, run_id, offset), ping=15, send_timeout=30)


async def _events(services: Services, run_id: str, offset: int) -> AsyncIterator[dict[str, Any]]:
    training = services.training
    with training.hub.viewer(run_id) as news:
        ended: Run | None = None
        while True:
            news.clear()  # before reading: news of bytes that come after this read wakes the wait below
            data = training.hub.recent(run_id, offset, STREAM_CHUNK)  # shared by every viewer, no file read
            if data is None:
                data = await run_in_threadpool(training.read_bytes, run_id, offset, STREAM_CHUNK)
            if data:
                offset += len(data)
                yield {"data": base64.b64encode(data).decode(), "id": str(offset)}
                continue
            if ended is not None:  # ended before the read that found nothing more: the log is whole, all sent
                yield {"event": "end", "id": str(offset),
                       "data": json.dumps({"status": ended.status.value, "exit_code": ended.exit_code})}  # fmt: skip
                return
            run = await run_in_threadpool(training.runs.get, run_id)
            if run.status in TERMINAL_RUN:
                ended = run  # read once more: bytes may have come between the read above and the run's end
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(news.wait(), timeout=5)
