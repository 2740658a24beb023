"""Wire types of errors: every 4xx and 5xx answer's body."""

from pydantic import BaseModel, Field


class FieldError(BaseModel):
    """One problem with one field of a request (422 answers list them in `errors`)."""

    loc: list[str | int] = Field(examples=[["body", "optimizer", "lr"]], description="Where: body, query, path...")
    msg: str = Field(examples=["Input should be greater than 0"])
    type: str = Field(examples=["greater_than"], description="pydantic's error type.")


class ErrorResponse(BaseModel):
    """Every error answer (4xx and 5xx): a human-readable `detail` naming the field and the problem; request
    validation errors (422) also list each problem in `errors`."""

    detail: str = Field(examples=["optimizer.lr: Input should be greater than 0"])
    errors: list[FieldError] | None = Field(None, description="422 only: each invalid field.")
