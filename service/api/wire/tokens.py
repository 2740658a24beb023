"""Wire types of API tokens, as created and as listed."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, StrictFloat

from service.access import Scope

PREDICT_RATE = "Predict requests per second for this token (0: no limit); null: the server's CONVLAB_PREDICT_RATE."


class TokenCreate(BaseModel):
    """A new API token: a unique name and the scopes it grants (`admin` implies all)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", examples=["alice-laptop"])
    scopes: list[Scope] = Field(min_length=1, max_length=len(Scope), examples=[["jobs:read", "jobs:write"]])
    predict_rate: StrictFloat | None = Field(None, ge=0, le=1e9, description=PREDICT_RATE, examples=[50])


class TokenUpdate(BaseModel):
    """A change to a token: its predict rate (the other fields are fixed; make a new token to change scopes)."""

    model_config = ConfigDict(extra="forbid")

    predict_rate: StrictFloat | None = Field(..., ge=0, le=1e9, description=PREDICT_RATE, examples=[50])


class TokenRead(BaseModel):
    """A token as listed: never its secret, only the first characters (`hint`) to recognise it by."""

    model_config = ConfigDict(from_attributes=True)

    name: str
    hint: str = Field(examples=["cvl_Ab3x"])
    scopes: list[Scope]
    created_at: datetime
    last_used_at: datetime | None = None
    predict_rate: float | None = Field(None, description=PREDICT_RATE)


class TokenCreated(TokenRead):
    """A token just made, with its secret: shown this once, stored only as a hash."""

    token: str = Field(description="The secret to send as `Authorization: Bearer <token>`.")
