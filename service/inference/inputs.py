"""Predict inputs as received (encoded files or pixel arrays), parsed from JSON and decoded into images."""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema

from service.errors import BadRequest, InvalidInput, describe_validation_errors
from service.inference.images import ImageLimits, check_count, decode_image, pixels_to_tensor
from service.wire import exactly_one_schema, refuse_explicit_nulls

# A 1x1 black gray PNG, base64-encoded: the smallest valid example image.
ONE_PIXEL_PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="


class PredictRequest(BaseModel):
    """Images as base64 PNG/JPEG strings, or as pixel arrays (rows of 0..255); exactly one of the two."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [
                {"images": [ONE_PIXEL_PNG]},
                {"pixels": [[[0] * 28] * 28]},
            ],
            **exactly_one_schema("images", "pixels"),
        },
    )

    images: list[str] | SkipJsonSchema[None] = Field(
        None, description="Base64-encoded PNG or JPEG files (data: URLs allowed)."
    )
    pixels: list[list[list[float]]] | SkipJsonSchema[None] = Field(
        None, description="Gray images as [H][W] arrays of numbers 0..255, e.g. 28x28 for Fashion-MNIST."
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        return refuse_explicit_nulls(data, "images", "pixels")


@dataclass(frozen=True)
class RawInputs:
    """Images as received: encoded files (`files`) or nested pixel lists (`pixels`), in input order."""

    kind: Literal["files", "pixels"]
    items: list[Any]
    field: str


def _b64(text: str, index: int) -> bytes:
    if text.startswith("data:"):
        text = text.partition(",")[2]
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"images[{index}]: not valid base64") from None


def parse_json_inputs(body: bytes, limits: ImageLimits) -> RawInputs:
    """The `images` (base64) or `pixels` of a JSON body; 400 if it is not JSON, 422 if it does not fit."""
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"malformed JSON body: {exc}") from None
    try:
        request = PredictRequest.model_validate(payload)
    except ValidationError as exc:
        raise InvalidInput(describe_validation_errors(exc.errors())) from None
    if (request.images is None) == (request.pixels is None):
        raise InvalidInput("body: send exactly one of `images` (base64 PNG/JPEG) or `pixels` (0..255 arrays)")
    if request.images is not None:
        check_count(len(request.images), limits)
        return RawInputs("files", [_b64(s, i) for i, s in enumerate(request.images)], "images")
    assert request.pixels is not None
    check_count(len(request.pixels), limits)
    return RawInputs("pixels", list(request.pixels), "pixels")


def decode_all(raw: RawInputs, *, in_channels: int, limits: ImageLimits) -> list[torch.Tensor]:
    """Each input as a uint8 [C, H, W] tensor; 4xx naming the first bad one."""
    if raw.kind == "files":
        return [
            decode_image(data, in_channels=in_channels, limits=limits, name=f"{raw.field}[{i}]")
            for i, data in enumerate(raw.items)
        ]
    return [
        pixels_to_tensor(item, in_channels=in_channels, limits=limits, name=f"pixels[{i}]")
        for i, item in enumerate(raw.items)
    ]
