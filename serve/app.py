"""The FastAPI application: routes, error mapping, request ids, client disconnects and time-outs.

Every answer that is not a success is a JSON ``ErrorResponse`` naming the fields at fault (400), the missing or
wrong API key (401), the body size limit (413), the Content-Type expected (415), why the server cannot take the
request now (503, with Retry-After) or the time limit it hit (504). Anything unexpected is logged with the request
id and answered 500 without its details; the server keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from contextlib import asynccontextmanager, suppress

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from padellm import __version__
from padellm_serve.admission import Admission
from padellm_serve.auth import CHALLENGE, MESSAGE, KeyCheck
from padellm_serve.docs import add_docs
from padellm_serve.metrics import ServerMetrics
from padellm_serve.page import PAGE
from padellm_serve.protocol import (ErrorBody, ErrorResponse, Health, ModelsResponse, NERRequest, NERResponse,
                                    Problem, body_problem, brief, capped, problems_from_validation)
from padellm_serve.schema import openapi_schema
from padellm_serve.service import NERService, RequestRejected

logger = logging.getLogger("padellm.serve")

CLIENT_CLOSED = 499  # nginx's convention: the client went away before the answer
REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
ERRORS = {status: {"model": ErrorResponse} for status in (400, 408, 413, 415, 500, 503, 504)}
JSON_TYPES = ("application/json",)
BODY_ROUTES = {("POST", "/v1/ner")}  # the routes that read a body: the guard reads and checks it first
MAX_MESSAGE_CHARS = 400
TOO_LARGE = object()


def error_response(status: int, kind: str, request_id: str, problems: list[Problem], message: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    """The error body: at most ``MAX_PROBLEMS`` problems (and a count of the rest), each message cut short."""
    problems = [p if len(p.message) <= MAX_MESSAGE_CHARS else p.model_copy(update={
        "message": p.message[: MAX_MESSAGE_CHARS - 40] + f"... ({len(p.message)} characters)"}) for p in capped(problems)]
    message = message or "; ".join(f"{p.field}: {p.message}" + (f" (limit {p.limit})" if p.limit is not None else "")
                                   for p in problems)
    body = ErrorResponse(error=ErrorBody(type=kind, message=message, request_id=request_id, problems=problems))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def media_type(content_type: bytes) -> str:
    """``application/json; charset=utf-8`` -> ``application/json``."""
    return content_type.decode("latin-1").split(";", 1)[0].strip().lower()


class RequestGuard:
    """ASGI middleware in front of the routes: gives every request an id (the client's X-Request-ID when it is
    sane), echoes it in the response, refuses a request without a valid API key where keys are set (401), and
    refuses bodies over ``max_body_bytes`` (413), of a Content-Type that is not JSON (415), slower than
    ``read_timeout_s`` (408, closing the connection), not UTF-8 or not JSON the schema can read (400) before
    anything parses them."""

    def __init__(self, app, max_body_bytes: int, metrics: ServerMetrics, read_timeout_s: float = 10.0,
                 keys: KeyCheck = KeyCheck()):
        self.app, self.max_body_bytes, self.metrics, self.read_timeout_s = app, max_body_bytes, metrics, read_timeout_s
        self.keys = keys

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message):
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        async def refuse(status: int, kind: str, problem: Problem, extra: dict[str, str] | None = None):
            self.metrics.record("unknown", status)
            await error_response(status, kind, request_id, [problem], headers=extra)(scope, receive, send_with_id)

        if not self.keys.allows(scope["method"], scope["path"], headers.get(b"authorization", b"")):
            return await refuse(401, "unauthorized", Problem(field="Authorization", message=MESSAGE),
                                {"WWW-Authenticate": CHALLENGE})
        if (scope["method"], scope["path"]) not in BODY_ROUTES:  # the app answers 404 / 405 for the rest
            return await self.app(scope, receive, send_with_id)

        too_large = Problem(field="body", message="the request body is too large", limit=self.max_body_bytes)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return await refuse(413, "payload_too_large", too_large)
        given_type = media_type(headers.get(b"content-type", b""))
        if given_type not in JSON_TYPES:
            sent = f"as {brief(given_type)}" if given_type else "without a Content-Type"
            return await refuse(415, "unsupported_media_type", Problem(
                field="Content-Type", message=f"the body was sent {sent}; send JSON with Content-Type: "
                                              f"application/json"))

        async def read_body() -> bytes | object | None:
            """The body; or ``TOO_LARGE`` past the size limit; or None when the client went away."""
            chunks, size = [], 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunks.append(message.get("body", b""))
                size += len(chunks[-1])
                if size > self.max_body_bytes:
                    return TOO_LARGE
                if not message.get("more_body"):
                    return b"".join(chunks)

        try:
            body = await asyncio.wait_for(read_body(), self.read_timeout_s)
        except asyncio.TimeoutError:
            return await refuse(408, "request_timeout", Problem(
                field="body", message="the request body did not arrive in time", limit=self.read_timeout_s),
                {"Connection": "close"})
        if body is None:
            return  # nobody to answer
        if body is TOO_LARGE:
            return await refuse(413, "payload_too_large", too_large)
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as err:
            return await refuse(400, "invalid_request", Problem(
                field="body", message=f"not valid UTF-8: byte 0x{body[err.start]:02x} at offset {err.start}"))
        problem = body_problem(body)
        if problem is not None:
            return await refuse(400, "invalid_request", problem)

        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: the disconnect, when it comes

        await self.app(scope, replay, send_with_id)


async def wait_for_disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def decode_or_abort(work, request: Request, timeout: float, stopping: asyncio.Event | None = None):
    """``work``'s result; or "disconnected" / "timeout" / "stopping" (the server's grace period is ending), after
    cancelling it (which aborts its engine requests)."""
    task = asyncio.ensure_future(work)
    gone = asyncio.ensure_future(wait_for_disconnect(request))
    stop = asyncio.ensure_future(stopping.wait()) if stopping is not None else None
    try:
        waiting = {task, gone} | ({stop} if stop else set())
        done, _ = await asyncio.wait(waiting, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        gone.cancel()
        if stop is not None:
            stop.cancel()
    if task in done:
        return task.result()
    if gone in done:
        return "disconnected"
    return "stopping" if stop in done else "timeout"


def create_app(service: NERService, metrics: ServerMetrics | None = None, on_load_failure=None,
               keys: KeyCheck = KeyCheck()) -> FastAPI:
    """The HTTP app over ``service``. Its engines load in the background once the app starts (``/health`` says
    ``loading`` until then); ``on_load_failure`` is called if they cannot. With ``keys``, every route but
    ``/health`` and the static pages needs one of them (``Authorization: Bearer KEY``)."""
    metrics = metrics or ServerMetrics()
    metrics.watch_engine_queue(service.engine_queue_depth)
    config = service.config
    admission = Admission(config.max_texts_in_flight, config.request_timeout_s, config.shed_at)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        async def load():
            try:
                await service.start()
                metrics.ready.set(1)
            except Exception:
                if on_load_failure is not None:
                    on_load_failure()

        loading = asyncio.create_task(load())
        try:
            yield
        finally:
            if not loading.done():
                loading.cancel()
            with suppress(asyncio.CancelledError):
                await loading
            service.close()

    app = FastAPI(title="padellm", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Named entity recognition with PaDeLLM parallel decoding (and the autoregressive "
                              "baseline) on vLLM.")
    app.add_middleware(RequestGuard, max_body_bytes=config.max_body_bytes, metrics=metrics,
                       read_timeout_s=config.read_timeout_s, keys=keys)
    if config.docs:
        add_docs(app)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = openapi_schema(app, config, service.served_labels, service.default_mode, keys)
        return app.openapi_schema

    app.openapi = openapi

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        metrics.record("unknown", 400)
        return error_response(400, "invalid_request", request.state.request_id, problems_from_validation(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(exc.status_code, kind, request.state.request_id,
                              [Problem(field="path", message=f"{request.method} {request.url.path}: {exc.detail}")],
                              headers=getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        request_id = getattr(request.state, "request_id", "-")
        logger.error("request %s failed: %s", request_id, exc, exc_info=exc)
        return error_response(500, "internal", request_id, [],
                              message=f"internal error; the server log has the details under request id {request_id}")

    @app.post("/v1/ner", response_model=NERResponse, response_model_exclude_none=True, responses=ERRORS,
              summary="Entities of one text or a list of texts")
    async def ner(body: NERRequest, request: Request):
        request_id = request.state.request_id
        mode = body.mode or service.default_mode
        started = time.perf_counter()
        try:
            job = service.check(body)
            if service.in_flight >= config.max_in_flight:
                raise RequestRejected(503, "overloaded", [Problem(
                    field="body", message="too many requests in flight; retry shortly", limit=config.max_in_flight)],
                    {"Retry-After": "1"})
            refusal = admission.refusal(len(job.texts))
            if refusal is not None:
                raise RequestRejected(503, "overloaded", [Problem(field="body", message=refusal.message,
                                                                  limit=refusal.limit)],
                                      {"Retry-After": str(refusal.retry_after_s)})
        except RequestRejected as rejected:
            metrics.record(mode, rejected.status)
            return error_response(rejected.status, rejected.kind, request_id, rejected.problems,
                                  headers=rejected.headers)
        service.in_flight += 1
        metrics.in_flight.inc()
        ticket = admission.start(len(job.texts))
        finished = "aborted"
        try:
            outcome = await decode_or_abort(service.run(job), request, config.request_timeout_s, service.stopping)
            finished = "timeout" if outcome == "timeout" else "aborted" if isinstance(outcome, str) else "decoded"
        except Exception as exc:
            metrics.record(mode, 500)
            logger.error("request %s failed: %s", request_id, exc, exc_info=exc)
            return error_response(500, "internal", request_id, [],
                                  message=f"internal error; the server log has the details under request id {request_id}")
        finally:
            service.in_flight -= 1
            metrics.in_flight.dec()
            admission.finish(ticket, finished)
        if outcome == "disconnected":
            metrics.record(mode, CLIENT_CLOSED)
            logger.info("request %s: client disconnected; its engine requests were aborted", request_id)
            return Response(status_code=CLIENT_CLOSED)
        if outcome == "stopping":
            metrics.record(mode, 503)
            return error_response(503, "shutting_down", request_id, [Problem(
                field="body", message="the server is shutting down and its grace period ended before this request "
                                      "finished; its engine requests were aborted; retry on another instance",
                limit=config.graceful_shutdown_s)], headers={"Retry-After": "5"})
        if outcome == "timeout":
            metrics.record(mode, 504)
            return error_response(504, "timeout", request_id, [Problem(
                field="body", message="decoding took longer than the server's request time-out; its engine requests "
                                      "were aborted", limit=config.request_timeout_s)])
        metrics.record(mode, 200, time.perf_counter() - started, outcome.timings, outcome.stats)
        return service.response(request_id, job, outcome)

    @app.head("/health", include_in_schema=False)  # health checkers that ask with HEAD: the status code alone
    @app.get("/health", response_model=Health, responses={503: {"model": Health}},
             summary="ok once the engines are loaded (503 while loading or after a failure)")
    async def health():
        status = Health(status=service.status, detail=service.detail)
        return JSONResponse(status.model_dump(exclude_none=True), status_code=200 if service.status == "ok" else 503)

    @app.get("/v1/models", response_model=ModelsResponse, responses={503: {"model": ErrorResponse}},
             summary="The adapters this server decodes with, their labels and prompt templates")
    async def models(request: Request):
        if service.status != "ok":
            return error_response(503, "not_ready", request.state.request_id,
                                  [Problem(field="body", message=f"the server is {service.status}")],
                                  headers={"Retry-After": "5"})
        return ModelsResponse(data=service.describe())

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page():
        return HTMLResponse(PAGE)

    @app.get("/metrics", summary="Prometheus metrics", response_class=Response,
             responses={200: {"content": {"text/plain": {}}}})
    async def prometheus():
        return Response(metrics.render(), media_type=metrics.content_type)

    return app
