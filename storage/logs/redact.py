"""Secrets never reach a log line: known values and secret-looking patterns are masked.

Two nets, applied to every line our handler writes (message, exception text, every field):

1. **Known values**: code that creates or reads a secret registers it (``remember(value)``):
   API tokens (created and presented), CHAP passwords, repository keys, object store passwords
   and keys and the catalog URL's password from the configuration. Any occurrence is masked.
   The registry is per process and bounded (the newest ``MAX_KNOWN`` values).
2. **Patterns**: ``scheme://user:PASSWORD@``, ``password=...``/``"secret": "..."``-like pairs,
   ``Bearer ...`` and ``X-Auth-Token: ...`` headers, for secrets no code registered.

``scrub(text)`` is the pure part over an explicit set of known values (table-tested).
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping

MASK = "***"
MIN_KNOWN = 6  # shorter values would mask ordinary words
MAX_KNOWN = 1024
MAX_SECRET = 4096  # a longer "secret" is not remembered (and would not fit a line anyway)
SECRET_WORDS = (
    "password|passwd|pass|secret|secret_key|secret_access_key|access_secret|token|auth_token|api_key|"
    "apikey|passphrase|credential|credentials|chap_password|auth_password|mutual_password|private_key"
)
PATTERNS = (
    (r"(://[^:/@\s]*:)[^@\s]*@", r"\1" + MASK + "@"),
    (r"(?i)(\bbearer\s+)[^\s\"',;]+", r"\1" + MASK),
    (r"(?i)(\bx-(?:auth|storage|subject|service)-token[\"']?\s*[:=]\s*[\"']?)[^\s\"',;}]+", r"\1" + MASK),
    (r"(?i)(\b(?:" + SECRET_WORDS + r")[\"']?\s*[:=]\s*[\"']?)(?!\*\*\*)[^\s\"',;&}]+", r"\1" + MASK),
)


@functools.cache
def _compiled() -> tuple[tuple[re.Pattern[str], str], ...]:
    """Compiled on the first line written (a command that logs nothing does not pay for it)."""
    return tuple((re.compile(pattern), repl) for pattern, repl in PATTERNS)
# config keys whose values are secrets (object store options, export options)
SECRET_KEY = r"(?i)(password|passwd|secret|token|passphrase|private_key|credential|^key$|_key$)"  # swift: key

_known: OrderedDict[str, None] = OrderedDict()
_longest_first: tuple[str, ...] = ()  # _known sorted for scrub, rebuilt when it changes
_lock = threading.Lock()


def scrub(text: str, known: Iterable[str] = (), *, patterns: bool = True) -> str:
    """``text`` with every known value and every secret-looking pattern masked (``known`` longest
    first, so a value inside another is not masked half)."""
    for value in known:
        if value in text:
            text = text.replace(value, MASK)
    if patterns:
        for pattern, repl in _compiled():
            text = pattern.sub(repl, text)
    return text


def remember(value: object) -> None:
    """Register a secret (str or bytes) so no log line of this process shows it."""
    if isinstance(value, bytes):
        for form in (value.hex(), value.decode("latin-1")):
            remember(form)
        return
    if not isinstance(value, str):
        return
    value = value.strip()
    if not MIN_KNOWN <= len(value) <= MAX_SECRET:
        return
    global _longest_first
    with _lock:
        if value in _known:
            _known.move_to_end(value)
            return
        _known[value] = None
        while len(_known) > MAX_KNOWN:
            _known.popitem(last=False)
        _longest_first = tuple(sorted(_known, key=len, reverse=True))


def remember_options(options: Mapping[str, object]) -> None:
    """Register the values of secret-named keys of a config table (``password``, ``secret_key``...)."""
    for key, value in options.items():
        if isinstance(value, Mapping):
            remember_options(value)
        elif re.search(SECRET_KEY, str(key)):
            remember(value)


def remember_url(url: str | None) -> None:
    """The password of ``scheme://user:password@host/...``."""
    if url:
        match = re.search(r"://[^:/@\s]*:([^@\s]*)@", url)
        if match:
            remember(match.group(1))
            from urllib.parse import unquote

            remember(unquote(match.group(1)))


def known() -> tuple[str, ...]:
    """This process's known secrets, longest first."""
    return _longest_first


def mask(text: str) -> str:
    """``scrub`` with this process's known secrets."""
    return scrub(text, _longest_first) if text else text


def remember_settings(settings: object) -> None:
    """Every secret a loaded configuration holds: the catalog URL's password, secret-named options
    of object stores, pools and the backup table."""
    remember_url(getattr(settings, "catalog_url", None))
    for table in (*getattr(settings, "object_stores", {}).values(), *getattr(settings, "pools", {}).values()):
        remember_options(table.options())
    remember_options(getattr(getattr(settings, "backup", None), "model_extra", None) or {})
