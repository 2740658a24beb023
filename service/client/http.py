"""The connection every call of `Client` goes through: one httpx pool, the token, and `ClientError` for every
failure (the HTTP status, None when the server could not be reached, and the server's `detail`)."""

import os
from collections.abc import Mapping
from typing import Any, Self, TypeVar

import httpx
from pydantic import BaseModel, ValidationError

from service.errors import describe_validation_errors

DEFAULT_URL = "http://127.0.0.1:8000"
M = TypeVar("M", bound=BaseModel)


class ClientError(Exception):
    """A request that failed: `status` is the HTTP status (None: no answer), `detail` the server's reason."""

    def __init__(self, status: int | None, detail: str) -> None:
        super().__init__(f"{status}: {detail}" if status is not None else detail)
        self.status = status
        self.detail = detail


def validated(model: type[M], body: M | Mapping[str, Any] | None, fields: Mapping[str, Any]) -> M:
    """`body` (a model or a mapping) updated with `fields`, validated here: a ClientError(422) naming the field."""
    values = body.model_dump(exclude_unset=True) if isinstance(body, BaseModel) else dict(body or {})
    try:
        return model.model_validate({**values, **fields})
    except ValidationError as exc:
        raise ClientError(422, describe_validation_errors(exc.errors())) from None


def detail(response: httpx.Response) -> str:
    """The server's `detail` of a refused request (or its text, when the body is not the API's JSON)."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or response.reason_phrase
    reason = body.get("detail") if isinstance(body, dict) else None
    return str(reason) if reason is not None else response.text


class Connection:
    """The convlab API at `url` (default: CONVLAB_URL, else http://127.0.0.1:8000), as `token`
    (default: CONVLAB_TOKEN; none: no Authorization header)."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = (url or os.environ.get("CONVLAB_URL") or DEFAULT_URL).rstrip("/")
        token = token if token is not None else os.environ.get("CONVLAB_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout, transport=transport)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send a request; ClientError with the status and `detail` unless it succeeded."""
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ClientError(None, f"cannot reach convlab at {self.url}: {exc or type(exc).__name__}") from exc
        if response.is_error:
            raise ClientError(response.status_code, detail(response))
        return response

    def _get(self, model: type[M], path: str, **kwargs: Any) -> M:
        return model.model_validate(self.request("GET", path, **kwargs).json())

    def _get_list(self, model: type[M], path: str, **kwargs: Any) -> list[M]:
        return [model.model_validate(item) for item in self.request("GET", path, **kwargs).json()]
