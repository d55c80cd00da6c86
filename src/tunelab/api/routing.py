"""How requests meet routes: the route class every API router uses, whose bodies are parsed as strict JSON, the
path segment that names an experiment, the methods a path takes (for a 405's `Allow` header), and how routes
call the services that block.

Starlette parses bodies with `json.loads`, which accepts what JSON does not (NaN, Infinity, lone surrogates such
as "\\udfff" that no answer could encode again) and raises RecursionError on deep nesting. pydantic-core's parser
refuses all of these with a position, so such a body is a 422 `invalid_json`, never a stored row or a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute
from starlette.concurrency import run_in_threadpool
from starlette.convertors import StringConvertor, register_url_convertor
from starlette.routing import Match
from starlette.types import Scope

from tunelab.domain.adapters import RESERVED_ADAPTER_IDS
from tunelab.domain.datasets import RESERVED_DATASET_IDS
from tunelab.domain.experiments import RESERVED_EXPERIMENT_IDS

T = TypeVar("T")
# Every method a route here may take; HEAD is listed where Starlette adds it (its own routes, not FastAPI's).
_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body, allow_inf_nan=False)
            except ValueError as exc:
                # FastAPI answers a JSONDecodeError as a validation error located in the body.
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
        return self._json


class ExperimentIdConvertor(StringConvertor):
    """`/api/experiments/{experiment_id:experiment_id}` never matches the names of routes beside it: PATCH
    /api/experiments/by-input-artifacts is a 405 naming GET, not an update of an experiment of that name."""

    regex = "".join(f"(?!{name}$)" for name in RESERVED_EXPERIMENT_IDS) + "[^/]+"


register_url_convertor("experiment_id", ExperimentIdConvertor())


class DatasetIdConvertor(StringConvertor):
    """`/api/datasets/{dataset_id:dataset_id}` never matches `/api/datasets/demo` (which only takes POST)."""

    regex = "".join(f"(?!{name}$)" for name in RESERVED_DATASET_IDS) + "[^/]+"


register_url_convertor("dataset_id", DatasetIdConvertor())


class AdapterIdConvertor(StringConvertor):
    """`/api/adapters/{adapter_id:adapter_id}` never matches `/api/adapters/import`, `…/compare` and the like."""

    regex = "".join(f"(?!{name}$)" for name in RESERVED_ADAPTER_IDS) + "[^/]+"


register_url_convertor("adapter_id", AdapterIdConvertor())


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def allowed_methods(app: Any, scope: Scope) -> list[str]:
    """The methods some route of `app` takes at this request's path.

    Starlette's 405 names only the methods of the first route with the path, and each FastAPI route holds one
    method, so `GET /api/experiments/{id}` alone would hide PATCH and DELETE; here every route is asked.
    """
    return [
        method
        for method in _METHODS
        if any(route.matches({**scope, "method": method})[0] is Match.FULL for route in app.router.routes)
    ]


async def blocking(fn: Callable[..., T], *args: Any) -> T:
    """Run a service call, which blocks (DuckDB), in the thread pool.

    Routes are async and call this once: FastAPI runs a sync route's dependencies, the route itself and the
    validation of its answer in the thread pool one after another — three hops instead of one, about half the
    time of a small write.
    """
    return await run_in_threadpool(fn, *args)
