"""API tokens, for admins: create (the secret is shown once), list, change the predict rate, revoke."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Response

from service.api.plumbing.deps import SessionDep
from service.api.plumbing.security import ADMIN, auth_responses
from service.api.wire.errors import ErrorResponse
from service.api.wire.tokens import TokenCreate, TokenCreated, TokenRead, TokenUpdate
from service.storage import tokens
from service.storage.db import begin_write
from service.storage.orm import ApiToken

router = APIRouter(prefix="/tokens", tags=["tokens"], dependencies=[Depends(ADMIN)], responses=auth_responses())
TokenName = Annotated[str, Path(max_length=64, description="The token's name.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorResponse, "description": "No such token."}}


@router.post(
    "",
    status_code=201,
    summary="Create an API token",
    response_model=TokenCreated,
    responses={409: {"model": ErrorResponse, "description": "A token with this name exists."}},
)
def create_token(body: TokenCreate, session: SessionDep) -> TokenCreated:
    """Make a token with the given scopes; its secret is in this answer only (convlab keeps a hash)."""
    begin_write(session)  # the name check and the insert in one SQLite write transaction (no lock upgrade)
    token, secret = tokens.create_token(session, name=body.name, scopes=body.scopes, predict_rate=body.predict_rate)
    session.commit()
    return TokenCreated(**TokenRead.model_validate(token).model_dump(), token=secret)


@router.get("", summary="List API tokens", response_model=list[TokenRead])
def list_tokens(session: SessionDep) -> list[ApiToken]:
    """Every token's name, scopes, creation and last use; never a secret."""
    return tokens.list_tokens(session)


@router.patch("/{name}", summary="Change an API token's predict rate", response_model=TokenRead, responses=NOT_FOUND)
def update_token(name: TokenName, body: TokenUpdate, session: SessionDep) -> ApiToken:
    """Set the token's own predict rate (null: the server's again); its next request is counted at that rate, in
    every API process."""
    begin_write(session)
    token = tokens.set_predict_rate(session, name, body.predict_rate)
    session.commit()
    return token


@router.delete("/{name}", status_code=204, summary="Revoke an API token", responses=NOT_FOUND)
def revoke_token(name: TokenName, session: SessionDep) -> Response:
    """Revoke a token: the next request that presents it gets 401. Its jobs stay (owned by no token)."""
    begin_write(session)
    tokens.revoke_token(session, name)
    session.commit()
    return Response(status_code=204)
