"""Keys mounted from a file (``BOOKNLP_API_KEYS_FILE``), e.g. a Kubernetes secret; re-read when it changes.

One key per line, ``#`` starts a comment::

    NAME  KEY-or-sha256:HEX  [admin]  [rate_limit=120/minute] [max_active_jobs=N] [max_chars_per_day=N]

A plain key is hashed as it is read and never kept; a deployment that would rather not hold plain
keys at all writes ``sha256:`` and the hex digest (``booknlp-api keys hash`` prints it).
"""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import fields
from pathlib import Path

from booknlp_api.config import check_rate_limit
from booknlp_api.jobs.keys import HASH_PREFIX, ApiKey, KeyLimits, hash_key

log = logging.getLogger(__name__)

MIN_PLAIN_KEY_CHARS = 20
"""Shorter plain keys are refused: guessable keys defeat the point."""
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
_HASH = re.compile(rf"^{HASH_PREFIX}[0-9a-f]{{64}}$")
_LIMITS = {f.name for f in fields(KeyLimits)}


class KeyFileError(ValueError):
    """The keys file cannot be used; the message names the line."""


def valid_key_name(name: str) -> bool:
    return bool(_NAME.match(name))


def parse_key_file(text: str) -> list[ApiKey]:
    keys: dict[str, ApiKey] = {}
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split("#", 1)[0].split()
        if not words:
            continue
        try:
            key = _parse_line(words)
        except ValueError as exc:
            raise KeyFileError(f"keys file, line {number}: {exc}") from None
        if key.name in keys:
            raise KeyFileError(f"keys file, line {number}: the name {key.name!r} is used twice")
        keys[key.name] = key
    return list(keys.values())


def _parse_line(words: list[str]) -> ApiKey:
    if len(words) < 2:
        raise ValueError("expected NAME and KEY (or sha256:HEX)")
    name, secret, *options = words
    if not valid_key_name(name):
        raise ValueError(f"{name!r} is not a key name (letters, digits, . _ @ -)")
    if secret.startswith(HASH_PREFIX):
        if not _HASH.match(secret):
            raise ValueError("a hashed key is sha256: followed by 64 lower-case hex digits")
        key_hash = secret
    elif len(secret) < MIN_PLAIN_KEY_CHARS:
        raise ValueError(f"a plain key needs at least {MIN_PLAIN_KEY_CHARS} characters")
    else:
        key_hash = hash_key(secret)
    admin, limits = False, {}
    for option in options:
        if option == "admin":
            admin = True
            continue
        limit, _, value = option.partition("=")
        if limit not in _LIMITS or not value:
            raise ValueError(f"unknown option {option!r}: admin, or one of {', '.join(sorted(_LIMITS))}=VALUE")
        limits[limit] = check_rate_limit(value) if limit == "rate_limit" else _positive(limit, value)
    return ApiKey(name=name, key_hash=key_hash, admin=admin, limits=KeyLimits(**limits), source="file")


def _positive(limit: str, value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise ValueError(f"{limit} must be a whole number of at least 1")
    return int(value)


class KeyFile:
    """The file's keys, re-read when its modification time or size changes (a rotated secret)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._seen: tuple[float, int] | None = None
        self._keys: list[ApiKey] = []
        self.keys()  # a broken file stops the start-up, not the first request

    def keys(self) -> list[ApiKey]:
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError:
                if self._seen is None:
                    raise
                log.exception("the keys file cannot be read now; keeping the keys read before")
                return list(self._keys)
            seen = (stat.st_mtime, stat.st_size)
            if seen != self._seen:
                try:
                    self._keys = parse_key_file(self.path.read_text(encoding="utf-8"))
                except KeyFileError:
                    if self._seen is None:
                        raise
                    log.exception("the changed keys file is invalid; keeping the keys read before")
                self._seen = seen
            return list(self._keys)
