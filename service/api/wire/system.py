"""Wire types of the system routes: health, readiness and version."""

from typing import Any

from pydantic import BaseModel, Field


class VersionRead(BaseModel):
    name: str = "convlab"
    version: str = Field(examples=["0.1.0"])
    python: str = Field(examples=["3.11.2"])
    torch: str = Field(examples=["2.14.1"])
    api: str = Field("1", description="Version of the HTTP contract.")


class HealthRead(BaseModel):
    status: str = Field(examples=["ok"], description="ok, or degraded when the database is unreachable.")
    database: bool = Field(description="The database answered a query.")
    database_error: str | None = None
    workers: list[dict[str, Any]] = Field(
        default_factory=list, description="Workers with a heartbeat in the last few lease periods."
    )
    workers_alive: int = 0


class Probe(BaseModel):
    """A liveness or readiness answer."""

    status: str = Field(examples=["ok"], description="ok, or unavailable (readiness) with the reason.")
    reason: str | None = None
