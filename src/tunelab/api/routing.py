"""The route class every API router uses: request bodies are parsed as strict JSON.

Starlette parses bodies with `json.loads`, which accepts what JSON does not (NaN, Infinity, lone surrogates such
as "\\udfff" that no answer could encode again) and raises RecursionError on deep nesting. pydantic-core's parser
refuses all of these with a position, so such a body is a 422 `invalid_json`, never a stored row or a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute


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


class StrictJSONRoute(APIRoute):
    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
