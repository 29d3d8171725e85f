"""Catalog table of sealed CHAP secrets (migration 0017; storage/exports/catalog_secrets.py).

``sealed``: ``v1:`` + base64 of nonce (12 bytes) + AES-256-GCM ciphertext of the secret, with the
volume id as associated data (a row copied onto another volume does not open).
"""

from __future__ import annotations

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from storage.catalog.base import Base


class ExportSecretRow(Base):
    __tablename__ = "export_secrets"

    volume_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    sealed: Mapped[str] = mapped_column(String(512))
