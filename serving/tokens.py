"""API tokens: create (the secret is shown once), list (never the secrets), revoke, verify.

Each token has a name, a role (marketer, auditor or admin) and a secret of 32 random
bytes. The file keeps, per token, a random salt and SHA-256(salt + secret), never the
secret itself. Why a plain salted SHA-256 and not a slow password hash (scrypt,
argon2): slow hashes protect *guessable* secrets, such as passwords people choose;
these secrets are 256 bits drawn by `secrets`, so inverting the hash or guessing the
secret costs about 2^256 tries whatever the hash speed. A fast hash keeps every API
request cheap; the per-token salt keeps equal secrets from showing equal hashes and
rules out precomputed tables. Comparisons use `hmac.compare_digest` (constant time).

A token reads `ppt_<id>_<secret>`: the short public id finds the record without trying
every hash, and lets `tokens list` and logs name a token without revealing it.

The file is rewritten atomically (temp file + rename, mode 0600); the API re-reads it
when it changes, so tokens created or revoked with the CLI apply to a running server.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from propensity.config import ConfigError

PREFIX = "ppt"
FORMAT_VERSION = 1
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_TOKEN = re.compile(rf"^{PREFIX}_([0-9a-f]{{12}})_([A-Za-z0-9_-]{{43}})$")


class Role(str, Enum):
    """What a token may do; the API maps each endpoint to the roles allowed to call it."""

    marketer = "marketer"  # segments, campaigns, target lists
    auditor = "auditor"  # scores, reasons, model cards, run lineage
    admin = "admin"  # everything


class TokenError(ConfigError):
    """A token-file or token-command problem the user can fix; one-line message."""


@dataclass(frozen=True)
class TokenInfo:
    """A token as listed: everything but the secret (which the file does not hold either)."""

    name: str
    role: Role
    token_id: str
    created_at: str

    def as_dict(self) -> dict[str, str]:
        return {"name": self.name, "role": self.role.value, "token_id": self.token_id,
                "created_at": self.created_at}


def _checked(record: dict) -> dict:
    """A record from the file, refused (ValueError, KeyError) unless every field is well formed."""
    out = {k: str(record[k]) for k in ("name", "role", "token_id", "created_at", "salt", "sha256")}
    Role(out["role"])
    if len(bytes.fromhex(out["salt"])) != 16 or len(bytes.fromhex(out["sha256"])) != 32:
        raise ValueError(f"token {out['name']!r}: bad salt or hash length")
    return out


def _digest(salt: bytes, secret: str) -> str:
    return hashlib.sha256(salt + secret.encode()).hexdigest()


class TokenStore:
    """The token file at `path` (created on the first `create`)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._cache: tuple[tuple[int, int, int], list[dict]] | None = None

    # -- file ---------------------------------------------------------------------------
    def _read(self) -> list[dict]:
        """The records in the file; re-read only when its size or modification time changed."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return []
        key = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._cache is not None and self._cache[0] == key:
                return self._cache[1]
            try:
                data = json.loads(self.path.read_text())
                records = [_checked(r) for r in data["tokens"]]
            except (OSError, ValueError, KeyError, TypeError) as e:
                raise TokenError(f"token file {self.path} is unreadable or damaged ({type(e).__name__}: {e}); "
                                 "restore it or delete it and create new tokens") from None
            self._cache = (key, records)
            return records

    def _write(self, records: list[dict]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps({"format": FORMAT_VERSION, "hash": "sha256(salt + token)", "tokens": records}, indent=2)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(body + "\n")
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._cache = None

    # -- commands -----------------------------------------------------------------------
    def create(self, name: str, role: Role | str) -> tuple[TokenInfo, str]:
        """Add a token; returns its listing and the secret token (shown this once only).

        Raises:
            TokenError: a bad or already used name, or an unknown role.
        """
        if not _NAME.match(name):
            raise TokenError(f"token name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', "
                             "starting with a letter or digit")
        try:
            role = Role(role)
        except ValueError:
            raise TokenError(f"role {role!r}: use one of {', '.join(r.value for r in Role)}") from None
        records = list(self._read())
        if any(r["name"] == name for r in records):
            raise TokenError(f"a token named {name!r} exists already; revoke it first or choose another name")
        token_id = secrets.token_hex(6)
        while any(r["token_id"] == token_id for r in records):
            token_id = secrets.token_hex(6)
        secret = f"{PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        salt = secrets.token_bytes(16)
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        records.append({"name": name, "role": role.value, "token_id": token_id, "created_at": created,
                        "salt": salt.hex(), "sha256": _digest(salt, secret)})
        self._write(records)
        return TokenInfo(name, role, token_id, created), secret

    def list(self) -> list[TokenInfo]:
        """All tokens, oldest first, without secrets."""
        return [TokenInfo(r["name"], Role(r["role"]), r["token_id"], r["created_at"]) for r in self._read()]

    def revoke(self, name: str) -> TokenInfo:
        """Remove the token called `name`; it stops working at once (the API re-reads the file)."""
        records = list(self._read())
        keep = [r for r in records if r["name"] != name]
        if len(keep) == len(records):
            known = ", ".join(r["name"] for r in records) or "none"
            raise TokenError(f"no token named {name!r} (tokens: {known})")
        gone = next(r for r in records if r["name"] == name)
        self._write(keep)
        return TokenInfo(gone["name"], Role(gone["role"]), gone["token_id"], gone["created_at"])

    def verify(self, token: str) -> TokenInfo | None:
        """The token's listing when `token` is a valid, unrevoked secret; None otherwise."""
        m = _TOKEN.match(token or "")
        if not m:
            return None
        for r in self._read():
            if r["token_id"] == m.group(1):
                if hmac.compare_digest(_digest(bytes.fromhex(r["salt"]), token), r["sha256"]):
                    return TokenInfo(r["name"], Role(r["role"]), r["token_id"], r["created_at"])
                return None
        return None
