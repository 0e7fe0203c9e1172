"""`propensity serve` and `propensity tokens create|list|revoke`: thin commands over serving.api and serving.tokens."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from propensity.config import ConfigError, load_config
from propensity.console import App, ConfigOption, friendly, say
from serving.tokens import Role

tokens_app = App(help="API tokens: create (the secret is shown once), list, revoke. Stored hashed.",
                         no_args_is_help=True)

TokenFileOption = Annotated[
    Path | None,
    typer.Option("--token-file", help="The token file (default: token_file of the api section, else api_tokens.json next to propensity.toml)."),
]


def register(app: typer.Typer) -> None:
    """Add `serve` and the `tokens` group to the main app."""
    app.command("serve")(friendly(serve))
    tokens_app.command("create")(friendly(create_token))
    tokens_app.command("list")(friendly(list_tokens))
    tokens_app.command("revoke")(friendly(revoke_token))
    app.add_typer(tokens_app, name="tokens")


def _token_file(config: Path | None, token_file: Path | None) -> Path:
    from serving.api import api_settings, token_file_path

    if token_file is not None:
        return token_file
    return token_file_path(api_settings(load_config(config)), config)


def serve(
    host: Annotated[str | None, typer.Option(metavar="HOST", help="Address to listen on (default: \\[api] host in propensity.toml, else 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(min=1, max=65535, help="Port (default: \\[api] port in propensity.toml, else 8000).")] = None,
    token_file: TokenFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Serve the API and the web page (scores, reasons, segments, target lists, model cards, lineage).

    Every call but /health and the page needs a token from `propensity tokens create`.
    API docs: http://HOST:PORT/docs. Stop with Ctrl+C.
    """
    cfg = load_config(config)
    host = host or cfg.api.host
    port = port or cfg.api.port
    busy = port_problem(host, port)  # before saying "serving on": a taken port is the user's to change
    if busy:
        raise ConfigError(f"{busy}; choose another with --port (or [api] port in propensity.toml), "
                          "or stop what is using it")

    import uvicorn

    from serving.api import api_settings, create_app, token_file_path

    settings = api_settings(cfg)
    path = token_file if token_file is not None else token_file_path(settings, config)
    from serving.tokens import TokenStore

    if not TokenStore(path).list():
        say(f"note: no API tokens in {path} yet; create one with `propensity tokens create --role admin --name NAME`")
    if host not in ("127.0.0.1", "localhost", "::1"):
        say(f"note: listening on {host}: tokens travel in clear over plain HTTP; put TLS in front of it")
    say(f"serving {cfg.warehouse.url} on http://{host}:{port}/  (API docs: /docs; tokens: {path})")
    from serving.security import uvicorn_log_config

    # The access log never shows a token: RedactSecrets is on uvicorn's handlers (serving/security.py).
    uvicorn.run(create_app(cfg, path), host=host, port=port, log_level="info", log_config=uvicorn_log_config())


def port_problem(host: str, port: int) -> str | None:
    """Why the server could not listen on host:port (in use, not an address here), or None when it can.

    Binds a throw-away socket as uvicorn will (SO_REUSEADDR, so a port only in TIME_WAIT is free).
    """
    import errno
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        return f"cannot listen on {host!r}: {e.strerror}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return f"port {port} on {host} is already in use"
            return f"cannot listen on {host} port {port}: {e.strerror}"
    return None


def create_token(
    role: Annotated[Role, typer.Option(help="marketer (segments, targets), auditor (scores, reasons, cards, lineage) or admin (everything).")],
    name: Annotated[str, typer.Option(metavar="NAME", help="Who or what the token is for, e.g. anna or crm-export; must be unique.")],
    token_file: TokenFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Create a token and print it once: the file keeps only a salted hash of it."""
    from serving.tokens import TokenStore

    path = _token_file(config, token_file)
    info, secret = TokenStore(path).create(name, role)
    say(f"created {info.role.value} token {info.name!r} (id {info.token_id}) in {path}")
    say("copy it now: it is not stored and cannot be shown again")
    typer.echo(secret)


def list_tokens(token_file: TokenFileOption = None, config: ConfigOption = None) -> None:
    """List tokens: name, role, id, creation time (never the secrets)."""
    from serving.tokens import TokenStore

    path = _token_file(config, token_file)
    tokens = TokenStore(path).list()
    if not tokens:
        say(f"no tokens in {path}; create one with `propensity tokens create --role ROLE --name NAME`")
        return
    width = max(len(t.name) for t in tokens)
    for t in tokens:
        typer.echo(f"{t.name:<{width}}  {t.role.value:<8}  id {t.token_id}  created {t.created_at}")


def revoke_token(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The token's name, as `propensity tokens list` shows it.")],
    token_file: TokenFileOption = None,
    config: ConfigOption = None,
) -> None:
    """Revoke a token: it stops working at once, also on a running server."""
    from serving.tokens import TokenStore

    path = _token_file(config, token_file)
    if not path.exists():
        raise ConfigError(f"no token file at {path}; nothing to revoke")
    info = TokenStore(path).revoke(name)
    say(f"revoked {info.role.value} token {info.name!r} (id {info.token_id})")
