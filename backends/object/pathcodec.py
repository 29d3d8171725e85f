"""How the directory store maps container and object names to paths (pure functions).

An object name is split at '/'. Every component is percent-encoded so that no component can
be '.', '..', empty or contain a separator: ASCII characters outside ``[A-Za-z0-9_.-]`` become
``%XX`` (non-ASCII characters stay as they are, UTF-8 on disk),
a leading '.' becomes ``%2E`` (names starting with '.' are the store's own temp files), and
an empty component is a lone ``%``. Directory components get the suffix ``+`` (never produced
by the encoding), so ``a`` and ``a/b`` can both exist, as in Swift::

    "chunks/ab/abcdef"  ->  chunks+/ab+/abcdef
    "../etc/passwd"     ->  %2E.+/etc+/passwd
    "/x"                ->  %+/x
    "ünï/a b"           ->  ünï+/a%20b

A component may be at most 254 bytes once encoded (the file-name limit of ext4/xfs/tmpfs);
longer ones are refused with InvalidInput.

Nothing a caller chooses can reach outside the container directory.
"""

from __future__ import annotations

import re

from storage.errors import InvalidInput

DIR_SUFFIX = "+"
EMPTY = "%"
COMPONENT_MAX = 255  # bytes per path component on ext4, xfs, tmpfs
_SAFE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-")
_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.\-\u0080-\U0010ffff]")
_ESCAPES = {b: f"%{b:02X}" for b in range(256)}


def encode_component(component: str) -> str:
    """Encode one name component to a file name (without the directory suffix)."""
    if not component:
        return EMPTY
    if _UNSAFE_RE.search(component) is None:
        out = component
    else:
        out = "".join(c if c in _SAFE_CHARS or ord(c) > 127 else _ESCAPES[ord(c)] for c in component)
    if out[0] == ".":
        out = "%2E" + out[1:]
    size = len(out.encode("utf-8"))
    if size > COMPONENT_MAX - 1:
        raise InvalidInput(
            f"name component {component[:40]!r}... is {size} bytes once encoded; the file store accepts "
            f"components (text between '/') of at most {COMPONENT_MAX - 1} bytes (UTF-8; ASCII punctuation counts 3)",
            field="object",
        )
    return out


def decode_component(encoded: str) -> str:
    if encoded == EMPTY:
        return ""
    if "%" not in encoded:
        return encoded
    raw = bytearray()
    i = 0
    while i < len(encoded):
        ch = encoded[i]
        if ch == "%":
            raw.append(int(encoded[i + 1 : i + 3], 16))
            i += 3
        else:
            raw += ch.encode("utf-8")
            i += 1
    return raw.decode("utf-8")


def is_encoded_file(entry: str) -> bool:
    """True for a file name this codec produces (not a temp file or directory)."""
    return not entry.startswith(".") and not entry.endswith(DIR_SUFFIX)


def object_relpath(name: str) -> tuple[list[str], str]:
    """Directory components (already suffixed) and the leaf file name of an object name."""
    parts = name.split("/")
    dirs = [encode_component(p) + DIR_SUFFIX for p in parts[:-1]]
    return dirs, encode_component(parts[-1])


def container_dirname(container: str) -> str:
    return encode_component(container)
