"""Token administration (admin only). The secret is returned once, at creation."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field, StrictInt

from api.deps import StorageDep, require_admin
from api.errors import ERROR_RESPONSES
from api.fields import Body, IdPath, Name
from storage.bounds import TOKEN_EXPIRY_SECONDS_MAX
from storage.auth.service import TokenInfo

router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[Depends(require_admin)], responses=ERROR_RESPONSES)


class TokenCreate(Body):
    role: Literal["admin", "operator", "reader"]
    name: Name | None = None
    expires_in_seconds: Annotated[StrictInt, Field(ge=1, le=TOKEN_EXPIRY_SECONDS_MAX)] | None = None


class TokenCreated(BaseModel):
    token: TokenInfo
    secret: str = Field(description="The bearer string; shown only in this response")


@router.post("", response_model=TokenCreated, status_code=201)
def create_token(body: TokenCreate, st: StorageDep) -> TokenCreated:
    expires = timedelta(seconds=body.expires_in_seconds) if body.expires_in_seconds else None
    info, secret = st.tokens.create(body.role, name=body.name, expires=expires)
    return TokenCreated(token=info, secret=secret)


@router.get("", response_model=list[TokenInfo])
def list_tokens(st: StorageDep) -> list[TokenInfo]:
    return st.tokens.list()


@router.delete("/{token_id}", response_model=TokenInfo)
def revoke_token(token_id: IdPath, st: StorageDep) -> TokenInfo:
    return st.tokens.revoke(token_id)
