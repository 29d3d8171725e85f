"""Secrets a host call carries, sealed to the owning host's key: no job row holds them in the clear.

A host call is a job row in the catalog (storage/host/remote.py), kept until it is pruned, and
PostgreSQL keeps it in its files, WAL and dumps. A CHAP password an export sends its agent is
therefore **sealed** before it is enqueued: every agent has an X25519 key pair of its own
(``<data_dir>/secrets/host-<host_name>.key``, 32 bytes, mode 0600 in a 0700 directory, made on
first use) and publishes the public half in its ``services`` row (``capabilities.sealing_key``,
every heartbeat). The caller encrypts to that public key (an ephemeral X25519 key, HKDF-SHA256,
AES-256-GCM with the host call's ``context`` as associated data: the host and the target, so a
sealed value cannot be replayed into another host's or another target's call); only the agent
holding the private key opens it, in memory, just before the driver call. Neither the catalog nor
a database dump nor a reader of ``GET /jobs`` can open it.

``seal`` and ``open_sealed`` are pure given their keys (table-tested); ``HostKey`` is the tiny I/O.
"""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from storage.errors import DataCorruption, InvalidInput, PermissionDenied
from storage.logs import redact
from storage.paths import require_private

SCHEME = "x25519-hkdf-aesgcm-v1"
PREFIX = "x25519:"
KEY_BYTES = 32
MAX_SEALED_TEXT = 4096  # a sealed value's fields, bounded before they are decoded
_INFO = b"storage host-call sealed secret v1"
_RAW = serialization.Encoding.Raw


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii")


def _unb64(text: object, field: str) -> bytes:
    if not isinstance(text, str) or not 0 < len(text) <= MAX_SEALED_TEXT:
        raise InvalidInput(f"sealed value field {field!r} is not accepted; accepted: base64 text up to "
                           f"{MAX_SEALED_TEXT} characters", field=field)  # fmt: skip
    try:
        return base64.urlsafe_b64decode(text.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        raise InvalidInput(f"sealed value field {field!r} is not base64", field=field) from None


def public_text(private: X25519PrivateKey) -> str:
    """``x25519:<base64>``: what a host publishes."""
    return PREFIX + _b64(private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw))


def parse_public(text: object) -> X25519PublicKey:
    if not isinstance(text, str) or not text.startswith(PREFIX) or len(text) > 100:
        raise InvalidInput(f"sealing key {str(text)[:100]!r} is not accepted; accepted: x25519:<base64 of 32 bytes>",
                           field="sealing_key")  # fmt: skip
    raw = _unb64(text[len(PREFIX):], "sealing_key")
    if len(raw) != KEY_BYTES:
        raise InvalidInput(f"sealing key has {len(raw)} bytes; accepted: 32", field="sealing_key")
    return X25519PublicKey.from_public_bytes(raw)


def _key(shared: bytes, epk: bytes, host_pub: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO + epk + host_pub).derive(shared)


def seal(public: str, secret: str, context: str) -> dict[str, str]:
    """``secret`` encrypted to the host whose public key is ``public``, bound to ``context``."""
    host_pub = parse_public(public)
    eph = X25519PrivateKey.generate()
    epk = eph.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    key = _key(eph.exchange(host_pub), epk, host_pub.public_bytes(_RAW, serialization.PublicFormat.Raw))
    nonce = os.urandom(12)
    ct = AESGCM(key).encrypt(nonce, secret.encode("utf-8"), context.encode("utf-8"))
    return {"scheme": SCHEME, "epk": _b64(epk), "nonce": _b64(nonce), "ct": _b64(ct)}


def open_sealed(private: X25519PrivateKey, box: object, context: str) -> str:
    """The secret ``seal`` sealed for this private key and this ``context``; PermissionDenied when
    it was sealed for another key or another context (the ciphertext does not authenticate)."""
    if not isinstance(box, dict) or box.get("scheme") != SCHEME:
        shown = box.get("scheme") if isinstance(box, dict) else type(box).__name__
        raise InvalidInput(f"sealed value of scheme {str(shown)[:40]!r} is not accepted; accepted: {SCHEME}", field="sealed")
    epk, nonce, ct = _unb64(box.get("epk"), "epk"), _unb64(box.get("nonce"), "nonce"), _unb64(box.get("ct"), "ct")
    if len(epk) != KEY_BYTES or len(nonce) != 12:
        raise InvalidInput("sealed value is malformed (epk must be 32 bytes, nonce 12)", field="sealed")
    host_pub = private.public_key().public_bytes(_RAW, serialization.PublicFormat.Raw)
    key = _key(private.exchange(X25519PublicKey.from_public_bytes(epk)), epk, host_pub)
    try:
        plain = AESGCM(key).decrypt(nonce, ct, context.encode("utf-8"))
    except InvalidTag:
        raise PermissionDenied(
            "a sealed secret cannot be opened with this host's key: it was sealed for another host, another key "
            "(the agent's key file was replaced since the caller read the services row) or another call; retry"
        ) from None
    secret = plain.decode("utf-8")
    redact.remember(secret)  # never on a log line of this process
    return secret


def key_path(data_dir: Path, host_name: str) -> Path:
    """Pure: where host ``host_name`` keeps its private key (one per host name: test beds share a data dir)."""
    return Path(data_dir) / "secrets" / f"host-{host_name}.key"


class HostKey:
    """This host's private key: read from its 0600 file, made (atomically) when there is none."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._private: X25519PrivateKey | None = None

    def private(self) -> X25519PrivateKey:
        if self._private is None:
            self._private = self._load() or self._create()
        return self._private

    def public(self) -> str:
        return public_text(self.private())

    def _load(self) -> X25519PrivateKey | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        require_private(self.path, st.st_mode, "host key file")
        raw = self.path.read_bytes()
        if len(raw) != KEY_BYTES:
            raise DataCorruption(f"host key file {str(self.path)!r} holds {len(raw)} bytes; accepted: 32 "
                                 "(delete it and restart the agent: a new key is made and published)")  # fmt: skip
        return X25519PrivateKey.from_private_bytes(raw)

    def _create(self) -> X25519PrivateKey:
        from storage.paths import private_dir

        private_dir(self.path.parent)
        key = X25519PrivateKey.generate()
        raw = key.private_bytes(_RAW, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            os.write(fd, raw)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, self.path)  # never replaces a key another process of this host made meanwhile
        except FileExistsError:
            return self._load() or key
        finally:
            tmp.unlink(missing_ok=True)
        return key


# -- what a host call seals (the control plane) and opens (the agent) -------------------------
def export_context(host: str, spec: dict[str, Any]) -> str:
    """Pure: what a sealed CHAP password of ``export_target`` is bound to."""
    return f"export_target host={host} target={spec.get('target_iqn')} key={spec.get('key')}"


def seal_call(method: str, args: dict[str, Any], host: str, public: str | None) -> dict[str, Any]:
    """``args`` with every secret sealed for ``host`` (pure given ``public``): an ``export_target``
    spec's ``chap.password`` becomes ``chap.sealed_password``. A call with no secret is returned as is."""
    spec = args.get("spec")
    chap = spec.get("chap") if method == "export_target" and isinstance(spec, dict) else None
    if not isinstance(chap, dict) or chap.get("password") is None:
        return args
    if not public:
        from storage.errors import HostUnavailable

        raise HostUnavailable(
            f"host {host!r} has published no sealing key (its agent has not heartbeated since it was upgraded); a "
            "CHAP secret is never sent to an agent in the clear: restart the agent of that host and retry", host=host,
        )  # fmt: skip
    sealed = {k: v for k, v in chap.items() if k != "password"}
    sealed["sealed_password"] = seal(public, str(chap["password"]), export_context(host, spec))
    return {**args, "spec": {**spec, "chap": sealed}}


def open_call(method: str, args: dict[str, Any], host: str, private: "X25519PrivateKey | None") -> dict[str, Any]:
    """The agent's side of ``seal_call``: ``chap.sealed_password`` opened back into ``chap.password``."""
    spec = args.get("spec")
    chap = spec.get("chap") if method == "export_target" and isinstance(spec, dict) else None
    if not isinstance(chap, dict) or "sealed_password" not in chap:
        return args
    if private is None:
        raise PermissionDenied("a sealed secret reached a process that has no host key; only the agent opens it")
    opened = {k: v for k, v in chap.items() if k != "sealed_password"}
    opened["password"] = open_sealed(private, chap["sealed_password"], export_context(host, spec))
    return {**args, "spec": {**spec, "chap": opened}}
