"""Reading the three forms of predict input (multipart upload, base64 images, pixel arrays) from a request."""

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any, Literal

import torch
from fastapi import Request
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from service.api.handlers import describe_validation_errors
from service.errors import ConvlabError, InvalidInput
from service.inference import ImageLimits, check_count, decode_image, pixels_to_tensor
from service.schemas import PredictRequest


class BadRequest(ConvlabError):
    status_code = 400


class UnsupportedMediaType(ConvlabError):
    status_code = 415


@dataclass(frozen=True)
class RawInputs:
    """Images as received: encoded files (`files`) or nested pixel lists (`pixels`), in input order."""

    kind: Literal["files", "pixels"]
    items: list[Any]
    field: str


async def read_multipart(request: Request, limits: ImageLimits) -> RawInputs:
    """The `file` parts of a multipart/form-data body (one or more images)."""
    form = await request.form(max_files=limits.max_images + 1, max_fields=limits.max_images + 16)
    try:
        parts = form.getlist("file")
        if not parts:
            raise InvalidInput(f"file: missing; send each image as a multipart field named 'file' (got {list(form)})")
        if not all(isinstance(p, UploadFile) for p in parts):
            raise InvalidInput("file: must be an uploaded file, not a text field")
        check_count(len(parts), limits)
        return RawInputs("files", [await p.read() for p in parts if isinstance(p, UploadFile)], "file")
    finally:
        await form.close()


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


async def read_inputs(request: Request, limits: ImageLimits) -> RawInputs | bytes:
    """Multipart inputs parsed here, or the JSON body's bytes to parse off the event loop."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return await read_multipart(request, limits)
    if content_type in ("application/json", ""):
        return await request.body()
    raise UnsupportedMediaType(
        f"content-type {content_type!r} is not supported; send multipart/form-data (field 'file') or JSON"
    )


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
