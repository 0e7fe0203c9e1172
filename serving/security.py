"""HTTP hardening of the API: security headers, offline API docs, errors in the OpenAPI schema, no secrets in logs.

`install(app)` is called once by `serving.api.create_app`:

- **Security headers** on every response (a plain ASGI middleware, so streamed and
  error responses get them too): `X-Content-Type-Options: nosniff`, `X-Frame-Options:
  DENY` and CSP `frame-ancestors 'none'` (no page of this service may be framed by
  another site), `Referrer-Policy: no-referrer`, `Cross-Origin-Opener-Policy` and
  `Cross-Origin-Resource-Policy: same-origin`, and `Cache-Control: no-store` on
  everything but the fixed static files (answers carry scores and tokens' data; no
  proxy or browser cache may keep them). A Content-Security-Policy per kind of answer:
  the web page (`/`) and the API docs (`/docs`) may load scripts and styles from this
  service only (no inline script: the docs' start-up script is a file of its own),
  other HTML (model cards) is a sandboxed document that runs no script at all, and
  JSON, CSV and the rest get `default-src 'none'`.
- **API docs without the internet**: `/docs` is Swagger UI from the files the
  `fastapi-offline` package ships (served under `/docs/assets/`), not from a CDN;
  ReDoc (`/redoc`, CDN-only in FastAPI) is off. `/docs` and `/openapi.json` need no
  token: see the README's API section for why.
- **Errors in the schema**: the OpenAPI document describes the errors as they are sent,
  `{"detail": "<one line>"}` (422 adds the `errors` list), per operation: 401/403 where
  a token is needed, 404 and 503 where the warehouse or registry is read, 422 where
  there is input, 400 for a body that cannot be read at all.
- **No secrets in the access log**: `RedactSecrets`, a logging filter on uvicorn's
  access logger, replaces anything shaped like an API token and the values of query
  parameters named like credentials (`token`, `access_token`, `api_key`, ...) with
  `REDACTED` before the line is written. The API reads tokens only from the
  `Authorization` header (which uvicorn never logs); the filter covers a client that
  puts one in the URL anyway.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# -- headers -----------------------------------------------------------------------------------

PAGE_CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; script-src 'self'; "
            "frame-src 'self' blob: data:; object-src 'none'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'")
# Swagger UI: its bundle, its stylesheet (and the inline styles React sets), data: icons, calls to this API.
DOCS_CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
# Other HTML (model cards: inline <style>, charts as data: images): a sandboxed document, no script.
DOCUMENT_CSP = ("default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
                "form-action 'none'; frame-ancestors 'none'; sandbox")
DATA_CSP = "default-src 'none'; frame-ancestors 'none'"
COMMON_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
DOCS_PATH = "/docs"
DOCS_ASSETS = "/docs/assets"
CACHEABLE_PREFIXES = ("/static/", DOCS_ASSETS + "/")  # fixed files of the release: no data in them


def content_security_policy(path: str, content_type: str) -> str:
    """The CSP for an answer at `path` of `content_type`."""
    if not content_type.lower().startswith("text/html"):
        return DATA_CSP
    if path in ("/", "/index.html"):
        return PAGE_CSP
    if path == DOCS_PATH:
        return DOCS_CSP
    return DOCUMENT_CSP


log = logging.getLogger("serving.api")


class SecurityHeaders:
    """ASGI middleware: the security headers above on every HTTP response, a 500 included.

    An unexpected exception (a bug: client input never causes one) is logged with its
    traceback and answered here, as a JSON 500 with a one-line detail and the same
    headers, instead of escaping to the server (which answers without them and, for
    uvicorn, drops the keep-alive connection).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope.get("path", "")
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in COMMON_HEADERS.items():
                    headers[name] = value
                headers["Content-Security-Policy"] = content_security_policy(path, headers.get("content-type", ""))
                if not path.startswith(CACHEABLE_PREFIXES):
                    headers["Cache-Control"] = "no-store"
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as e:
            if started:
                raise
            log.exception("internal error answering %s %s", scope.get("method"), redact(path))
            from starlette.responses import JSONResponse

            reply = JSONResponse({"detail": f"internal error ({type(e).__name__}); the server log has the details"},
                                 status_code=500)
            await reply(scope, receive, send_with_headers)


# -- API docs, offline ---------------------------------------------------------------------------

_DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{title} - API docs</title>
  <link rel="icon" type="image/png" href="docs/assets/favicon.png">
  <link rel="stylesheet" href="docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/start.js"></script>
</body>
</html>
"""
# Relative URLs: the docs work behind a path prefix too. No validator badge (it would call
# an outside service) and the token typed into "Authorize" is not kept after the tab closes.
_DOCS_START = """window.ui = SwaggerUIBundle({
  url: new URL("openapi.json", document.baseURI).href,
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""


def swagger_ui_files() -> Path:
    """The folder of Swagger UI's bundle and stylesheet (shipped by the fastapi-offline package)."""
    import fastapi_offline

    return Path(fastapi_offline.__file__).resolve().parent / "static"


def install_docs(app: Any) -> None:
    """`/docs` (Swagger UI from local files, no inline script) and its assets; the app has docs_url=None."""
    from html import escape

    from fastapi.responses import HTMLResponse, Response
    from fastapi.staticfiles import StaticFiles

    page = _DOCS_PAGE.format(title=escape(app.title))

    @app.get(DOCS_PATH, include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)

    @app.get(DOCS_PATH + "/start.js", include_in_schema=False)
    def docs_start() -> Response:
        return Response(_DOCS_START, media_type="text/javascript; charset=utf-8")

    app.mount(DOCS_ASSETS, StaticFiles(directory=swagger_ui_files()), name="docs-assets")


# -- errors in the OpenAPI schema ---------------------------------------------------------------

ERROR_SCHEMA = {
    "title": "Error",
    "type": "object",
    "description": "Every error: a one-line `detail`; 422 for malformed input also lists the validation `errors`.",
    "properties": {
        "detail": {"type": "string", "description": "What went wrong, in one line."},
        "errors": {"type": "array", "items": {"type": "object", "additionalProperties": True},
                   "description": "422 for malformed input: each problem's location (loc), message (msg) and type."},
    },
    "required": ["detail"],
}
ERROR_TEXT = {
    "400": "A body that cannot be read at all (e.g. not UTF-8 text).",
    "401": "Missing, unknown or revoked token.",
    "403": "The token's role may not call this endpoint.",
    "404": "Unknown customer, run, list, model or version (or no champion to score with).",
    "422": "Malformed input, or a request the data cannot satisfy (e.g. a ranking the run cannot do).",
    "503": "The warehouse is busy (a scoring run is writing) or not scored yet; retry after Retry-After seconds.",
}


def document_errors(schema: dict) -> dict:
    """Replace FastAPI's 422 description with the errors this API sends, and add 401/403/404/503."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, item in schema.get("paths", {}).items():
        for method, op in item.items():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            codes = ["400"] if op.get("requestBody") else []
            if op.get("parameters") or op.get("requestBody"):
                codes.append("422")
            if op.get("security"):
                codes.append("401")
                if path != "/me":  # any valid token may ask who it is; nothing is read for it
                    codes += ["403", "404", "503"]
            for code in codes:
                op["responses"][code] = {"description": ERROR_TEXT[code],
                                         "content": {"application/json": {"schema": ref}}}
    text = repr(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f"#/components/schemas/{name}'" not in text:
            components.pop(name, None)
    return schema


def install_error_schema(app: Any) -> None:
    """Make `app.openapi()` describe the errors as sent (see `document_errors`)."""
    build: Callable[[], dict] = app.openapi

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(build())
        return app.openapi_schema

    app.openapi = openapi


# -- no secrets in the access log -----------------------------------------------------------------

TOKEN_SHAPE = re.compile(r"ppt_[0-9A-Za-z]{6,}_[A-Za-z0-9_-]{10,}")
SECRET_PARAMS = re.compile(r"(?i)^(token|access[_-]?token|id[_-]?token|refresh[_-]?token|api[_-]?key|apikey|key|"
                           r"secret|client[_-]?secret|password|passwd|pwd|auth|authorization|bearer|jwt|session)$")
REDACTED = "REDACTED"


def redact(text: str) -> str:
    """`text` (a request target or a log line) without token-shaped strings or credential-named query values."""
    text = TOKEN_SHAPE.sub(REDACTED, text)
    path, sep, query = text.partition("?")
    if not sep:
        return text
    try:
        pairs = parse_qsl(query, keep_blank_values=True)
    except ValueError:
        return path + sep + REDACTED
    if not any(SECRET_PARAMS.match(k) for k, _ in pairs):
        return text
    kept = [(k, REDACTED if SECRET_PARAMS.match(k) else v) for k, v in pairs]
    return path + sep + urlencode(kept, safe="/:,", quote_via=quote)


class RedactSecrets(logging.Filter):
    """A logging filter that redacts tokens and credential query values in a record's message and arguments.

    uvicorn's access record is `'%s - "%s %s HTTP/%s" %d'` with the request target
    (path and query string) as an argument; every string argument is redacted.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


ACCESS_LOGGER = "uvicorn.access"


def redact_access_log(logger_name: str = ACCESS_LOGGER) -> None:
    """Attach `RedactSecrets` to uvicorn's access logger (once per process)."""
    logger = logging.getLogger(logger_name)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())


def uvicorn_log_config() -> dict:
    """uvicorn's default logging set-up with `RedactSecrets` on the access handler too."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact_secrets"] = {"()": "serving.security.RedactSecrets"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact_secrets")
    return config


# -- all of it ----------------------------------------------------------------------------------------

def install(app: Any) -> None:
    """Security headers, offline docs, error schema and the access-log filter, on `app`."""
    app.add_middleware(SecurityHeaders)
    install_docs(app)
    install_error_schema(app)
    redact_access_log()
