"""Bearer API keys: with keys set, every route answers 401 without one of them, except ``/health`` and the static
pages a browser must load before it can send a key (``/``, ``/docs`` and its assets: they carry no data)."""

from __future__ import annotations

import hashlib
import hmac

PUBLIC_PATHS = frozenset({"/health", "/", "/docs"})
PUBLIC_PREFIXES = ("/docs/assets/",)
CHALLENGE = 'Bearer realm="padellm"'
MESSAGE = "a valid API key is required: send the header Authorization: Bearer KEY"


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


class KeyCheck:
    """The keys a server accepts (none: every request passes). Keys are compared by their SHA-256 digests with
    ``hmac.compare_digest``, every key every time, so neither the time taken nor the answer tells which part of a
    wrong key (or header) was wrong."""

    def __init__(self, keys: list[str] | tuple[str, ...] = ()):
        self._digests = tuple(_digest(key.encode()) for key in keys)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    @staticmethod
    def is_public(method: str, path: str) -> bool:
        return method in ("GET", "HEAD") and (path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES))

    def accepts(self, authorization: bytes) -> bool:
        """Whether an ``Authorization`` header value carries one of the keys."""
        scheme, _, token = authorization.strip().partition(b" ")
        digest = _digest(token.strip())
        matched = False
        for known in self._digests:
            matched |= hmac.compare_digest(known, digest)
        return matched and scheme.lower() == b"bearer"

    def allows(self, method: str, path: str, authorization: bytes) -> bool:
        return not self.enabled or self.is_public(method, path) or self.accepts(authorization)
