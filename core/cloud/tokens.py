"""API tokens: ``tfe_<public id>_<secret>``. The public id finds the row; the secret is checked against its argon2
hash (argon2id, 19 MiB, 2 passes: OWASP's minimum for passwords; a token's secret is 256 random bits, so the hash
only guards a stolen database). The token is shown once, at creation; revoking sets ``revoked_at``.

Checking a hash costs ~19 MiB and tens of milliseconds, so a verified (public id, digest of the token) pair is
remembered in memory and at most :data:`MAX_PARALLEL_HASHES` hashes are checked at once; the row's revocation is
read from the database on every request, so a revoked token is refused at once."""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

SCOPES = ("read", "publish", "admin")
DEFAULT_SCOPES = ("read", "publish")
MAX_PARALLEL_HASHES = 4
_TOKEN = re.compile(r"tfe_([0-9a-f]{16})_([A-Za-z0-9_-]{43})")
_hasher = PasswordHasher(time_cost=2, memory_cost=19_456, parallelism=1)
_hash_slots = threading.BoundedSemaphore(MAX_PARALLEL_HASHES)
_verified: dict[str, str] = {}
_verified_lock = threading.Lock()


@dataclass(frozen=True)
class NewToken:
    """A token as created: ``token`` (shown once), ``public_id`` (for revoking, in logs) and the hash to store."""

    token: str
    public_id: str
    secret_hash: str


def new_token() -> NewToken:
    public_id = secrets.token_hex(8)
    secret = secrets.token_urlsafe(32)
    return NewToken(f"tfe_{public_id}_{secret}", public_id, _hasher.hash(secret))


def parse_token(token: str) -> tuple[str, str] | None:
    """(public id, secret) of a well-formed token, else None."""
    match = _TOKEN.fullmatch(token.strip())
    return (match.group(1), match.group(2)) if match else None


def secret_matches(public_id: str, secret: str, secret_hash: str) -> bool:
    """Does ``secret`` match the stored argon2 hash? (Remembered once verified, see the module docstring.)"""
    digest = hashlib.sha256(f"{public_id}:{secret}".encode()).hexdigest()
    with _verified_lock:
        known = _verified.get(public_id)
    if known is not None and hmac.compare_digest(known, digest):
        return True
    with _hash_slots:
        try:
            _hasher.verify(secret_hash, secret)
        except (VerificationError, InvalidHashError):
            return False
    with _verified_lock:
        _verified[public_id] = digest
    return True


def normalised_scopes(scopes: tuple[str, ...] | list[str]) -> str:
    unknown = sorted(set(scopes) - set(SCOPES))
    if unknown:
        raise ValueError(f"unknown token scope(s) {', '.join(unknown)}; known: {', '.join(SCOPES)}")
    return " ".join(s for s in SCOPES if s in scopes)
