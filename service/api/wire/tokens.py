"""Wire types of API tokens, as created and as listed."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from service.access import Scope


class TokenCreate(BaseModel):
    """A new API token: a unique name and the scopes it grants (`admin` implies all)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["alice-laptop"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope), examples=[["jobs:read", "jobs:write"]])


class TokenRead(BaseModel):
    """A token as listed: never its secret, only the first characters (`hint`) to recognise it by."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    hint: str = Field(examples=["cvl_Ab3x"])
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = None


class TokenCreated(TokenRead):
    """A token just made, with its secret: shown this once, stored only as a hash."""

    token: str = Field(description="The secret to send as `Authorization: Bearer <token>`.")
