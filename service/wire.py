"""Helpers for request models whose body must hold exactly one of two fields (optlab's `optimizer`/`optimizers`,
predict's `images`/`pixels`), so that the OpenAPI document states the rule the validator enforces."""

from typing import Any


def exactly_one_schema(first: str, second: str) -> dict[str, Any]:
    """JSON Schema: the object has `first` or `second`, not both (`json_schema_extra` of the model)."""
    return {"oneOf": [{"required": [first]}, {"required": [second]}]}


def refuse_explicit_nulls(data: Any, *names: str) -> Any:
    """`data` unchanged, or ValueError if it sets one of `names` to null (leave the field out instead)."""
    if isinstance(data, dict):
        for name in names:
            if name in data and data[name] is None:
                raise ValueError(f"`{name}` must not be null; leave it out instead")
    return data
