"""Who may call what: the bearer scheme, a scope dependency on every non-public route, lab compute gates.

A signed-in browser sends its token in a cookie instead (service/api/cookies.py); the bearer header wins when
both are present, and a cookie-authenticated state change must pass the forgery check.

Every route either depends on one `RequireScope` (directly or through its router) or is listed in
PUBLIC_PATHS; tests/api/test_security.py walks the app and fails on a route that does neither.
"""

from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Annotated, Any, Literal, TypeVar

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker

from service.access import ALL_SCOPES, Principal, Scope
from service.access.limits import Guards
from service.api.plumbing.cookies import cookie_secret
from service.api.plumbing.deps import SettingsDep, TokenReads, TokenReadsDep, get_guards
from service.api.wire.errors import ErrorResponse
from service.config import Settings
from service.errors import Forbidden, Unauthorized
from service.inference.shared_reads import SharedReads
from service.optlab.budget import work_budget
from service.storage import tokens
from service.storage.db import begin_write

PUBLIC_PATHS = frozenset(
    {"/health", "/health/live", "/health/ready", "/version", "/docs", "/docs/oauth2-redirect", "/redoc"}
    | {"/openapi.json", "/static"}
    | {"/ui/signin", "/ui/signout"}  # the dashboard's sign-in form and sign-out (service/web/signin.py)
    | {"/v2/health/live", "/v2/health/ready"}  # the Open Inference Protocol's health (service/api/routers/oip.py)
)

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token (`cvl_...`) from `convlab token create` or `POST /tokens`.",
)
GuardsDep = Annotated[Guards, Depends(get_guards)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


class RequireScope:
    """A dependency that admits a caller holding `scope` and gives its Principal (401, 403 or 429 otherwise)."""

    def __init__(self, scope: Scope, *, rate: Literal["predict", "lab"] | None = None) -> None:
        self.scope = scope
        self.rate = rate

    async def __call__(
        self,
        request: Request,
        credentials: Credentials,
        settings: SettingsDep,
        token_reads: TokenReadsDep,
        guards: GuardsDep,
    ) -> Principal:
        address = request.client.host if request.client else "unknown"
        if not settings.auth_required:
            principal = Principal(address=address, scopes=ALL_SCOPES)
        elif (opened := self.without_token(settings, address)) is not None:
            principal = opened
        else:
            try:
                principal = await self._identify(request, credentials, token_reads, guards, address)
            except Unauthorized as refused:
                raise self.refusal(request, refused) from None
        if not principal.allows(self.scope):
            raise Forbidden(
                f"this token lacks the scope {self.scope.value!r}, which {request.method} {_template(request)} needs"
            )
        if self.rate is not None:
            own = principal.predict_rate if self.rate == "predict" else None
            guards.rates[self.rate].check(principal.key, rate=own)
        return principal

    def without_token(self, settings: Settings, address: str) -> Principal | None:
        """A principal admitted with auth on but no token (None: a token is needed); subclasses may open up."""
        return None

    def refusal(self, request: Request, refused: Unauthorized) -> Exception:
        """What to raise for a caller without a valid token (the 401 itself; a page may redirect instead)."""
        return refused

    @staticmethod
    async def _identify(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None,
        token_reads: TokenReads,
        guards: Guards,
        address: str,
    ) -> Principal:
        secret = credentials.credentials if credentials else cookie_secret(request)
        if secret is None:
            raise Unauthorized("this request needs an API token: send `Authorization: Bearer <token>`")
        guards.logins.check(address)
        # A read that begins after this request arrived (a revocation shows on the next request), shared by the
        # requests with the same token that arrived before it began: no thread-pool trip of its own.
        found = await token_reads.get(secret)
        if found is None:
            guards.logins.record(address)
            raise Unauthorized("the API token is unknown or was revoked")
        return replace(found, address=address)


def authenticate(factory: sessionmaker[Session], secret: str, address: str) -> Principal | None:
    """The Principal of a known, unrevoked token secret (its last use recorded), else None."""
    with factory() as session:
        token = tokens.find_token(session, secret)
        if token is None:
            return None
        principal = Principal(
            address=address,
            scopes=frozenset(Scope(s) for s in token.scopes),
            token_id=token.id,
            token_name=token.name,
            predict_rate=token.predict_rate,
        )
        stale = tokens.is_use_stale(token)
    if stale:
        with factory() as session:
            begin_write(session)
            tokens.record_use(session, token.id)
            session.commit()
    return principal


def read_token(factory: sessionmaker[Session], secret: str) -> Principal | None:
    """`authenticate` without a client address (the token's holder, whoever calls): what TokenReads share."""
    return authenticate(factory, secret, "")


def token_reads(factory: sessionmaker[Session]) -> TokenReads:
    """The shared token reads of an API process (built by the lifespan with its session factory)."""
    return SharedReads(partial(read_token, factory))


def _template(request: Request) -> str:
    route = request.scope.get("route")
    return str(getattr(route, "path", request.url.path))


class MetricsAccess(RequireScope):
    """The `metrics` scope (or admin), unless CONVLAB_METRICS_PUBLIC makes /metrics open to all."""

    def __init__(self) -> None:
        super().__init__(Scope.metrics)

    def without_token(self, settings: Settings, address: str) -> Principal | None:
        """Anyone may scrape when CONVLAB_METRICS_PUBLIC is set."""
        if not settings.access.metrics_public:
            return None
        return Principal(address=address, scopes=frozenset({Scope.metrics}))


JOBS_READ = RequireScope(Scope.jobs_read)
JOBS_WRITE = RequireScope(Scope.jobs_write)
PREDICT = RequireScope(Scope.predict, rate="predict")
LAB = RequireScope(Scope.lab, rate="lab")
ADMIN = RequireScope(Scope.admin)
PREDICT_UNLIMITED = RequireScope(Scope.predict)  # what predicting needs, without counting against its rate
MODELS_READ = RequireScope(Scope.models_read)
MODELS_WRITE = RequireScope(Scope.models_write)
DATASETS_READ = RequireScope(Scope.datasets_read)
DATASETS_WRITE = RequireScope(Scope.datasets_write)

ReadsJobs = Annotated[Principal, Depends(JOBS_READ)]
WritesJobs = Annotated[Principal, Depends(JOBS_WRITE)]
WritesDatasets = Annotated[Principal, Depends(DATASETS_WRITE)]
Admin = Annotated[Principal, Depends(ADMIN)]
ReadsModels = Annotated[Principal, Depends(MODELS_READ)]
WritesModels = Annotated[Principal, Depends(MODELS_WRITE)]


def auth_responses(*, limited: bool = False) -> dict[int | str, dict[str, Any]]:
    """The answers every protected route can give besides its own (for the OpenAPI document)."""
    responses: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorResponse, "description": "No API token, or an unknown or revoked one."},
        403: {"model": ErrorResponse, "description": "The token lacks the scope this operation needs."},
    }
    if limited:
        responses[429] = {"model": ErrorResponse, "description": "Too many requests; see Retry-After."}
    return responses


R = TypeVar("R")


class LabGate:
    """Runs one lab computation: in a compute slot (429 when none frees up soon) and within the time budget."""

    def __init__(self, guards: Guards, seconds: float) -> None:
        self.guards = guards
        self.seconds = seconds

    def run(self, compute: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """`compute(*args, **kwargs)`, stopped with a 422 once it has worked `seconds`."""
        with self.guards.slots.slot(), work_budget(self.seconds):
            return compute(*args, **kwargs)


def get_lab_gate(guards: GuardsDep, settings: SettingsDep) -> LabGate:
    """The gate lab handlers run their computation through."""
    return LabGate(guards, settings.access.lab_max_seconds)


LabGateDep = Annotated[LabGate, Depends(get_lab_gate)]
