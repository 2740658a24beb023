"""Predict inputs as received (encoded files, pixel arrays, or a whole multipart body), parsed and decoded.

Parsing happens off the event loop, in the thread that decodes the images: a multipart body arrives here as
bytes (`RawInputs.of_multipart`) and is split here, without the spooled files, coroutines and form objects of
Starlette's `form()`, which cost more than a small image's decode.
"""

import base64
import binascii
import json
import re
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.json_schema import SkipJsonSchema
from python_multipart.multipart import parse_options_header

from service.errors import BadRequest, InvalidInput, PayloadTooLarge, describe_validation_errors
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
    """Images as received: encoded files (`files`), nested pixel lists (`pixels`), in input order, or a
    multipart/form-data body still to be split (`multipart`: one item, the body; `content_type` its header)."""

    kind: Literal["files", "pixels", "multipart"]
    items: list[Any]
    field: str
    content_type: str = ""

    @classmethod
    def of_multipart(cls, body: bytes, content_type: str) -> "RawInputs":
        """A multipart body whose `file` parts are the images (split by `decode_all`, off the event loop)."""
        return cls("multipart", [body], "file", content_type)


# A multipart header value of the usual shape (`form-data; name="file"; filename="x.png"`, `multipart/form-data;
# boundary=...`): lower-case parameter names, each value a token or a quoted string with nothing to unescape.
_TOKEN = rb"[A-Za-z0-9!#$%&'+.^_`|~-]+"
_PARAMETER = rb'; ?([a-z0-9!#$%&\'+.^_`|~-]+)=(?:"([^"\\;]*)"|(' + _TOKEN + rb"))"
PLAIN_PARAMETER = re.compile(_PARAMETER)
PLAIN_OPTIONS = re.compile(rb"[A-Za-z0-9!#$%&'+.^_`|~/-]+(?:" + _PARAMETER + rb")*")


def header_options(value: bytes) -> dict[bytes, bytes]:
    """A header value's parameters, as python-multipart's `parse_options_header` gives them: read here with one
    regular expression when the value has the usual shape (PLAIN_OPTIONS; a third of the library's cost, twice a
    request), by the library otherwise."""
    if PLAIN_OPTIONS.fullmatch(value):
        return {name: quoted or token for name, quoted, token in PLAIN_PARAMETER.findall(value)}
    return parse_options_header(value)[1]


@dataclass(frozen=True)
class _Part:
    """One part of a multipart body: its Content-Disposition options and its content."""

    options: dict[bytes, bytes]
    content: bytes


def _split_multipart(body: bytes, content_type: str, *, max_parts: int = 1 << 16) -> list[_Part]:
    """The parts of a multipart/form-data body (RFC 7578), in order; 400 if it is malformed.

    Hand-written on purpose: python-multipart's parser (which Starlette's `form()` uses) walks part headers
    one byte at a time in Python, about 100 us for a one-image body, more than decoding its PNG; splitting on
    the delimiter with `bytes.find` takes a few microseconds. Header parameters are python-multipart's
    `parse_options_header` but for the usual plain shape (`header_options`); tests/api/test_predict.py checks both
    parsers agree.
    """
    boundary = header_options(content_type.encode("latin-1")).get(b"boundary")
    if not boundary:
        raise BadRequest("malformed multipart body: the content-type names no boundary")
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0:
        raise BadRequest("malformed multipart body: no part starts with the boundary")
    parts: list[_Part] = []
    position = start + len(delimiter)
    while not body.startswith(b"--", position):
        if len(parts) == max_parts:
            raise PayloadTooLarge(f"more than {max_parts} multipart parts in one request (see predict_max_images)")
        head_start = body.find(b"\r\n", position) + 2
        head_end = body.find(b"\r\n\r\n", head_start - 2)
        end = body.find(b"\r\n" + delimiter, head_end)
        if head_start < 2 or head_end < 0 or end < 0 or body[position : head_start - 2].strip(b" \t"):
            raise BadRequest("malformed multipart body: a part is cut short or its boundary line is broken")
        parts.append(_Part(_disposition(body[head_start:head_end]), body[head_end + 4 : end]))
        position = end + 2 + len(delimiter)
    return parts


def _disposition(head: bytes) -> dict[bytes, bytes]:
    """The options (name, filename) of a part's Content-Disposition header, if it has one."""
    for line in head.split(b"\r\n"):
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() == b"content-disposition":
            return header_options(value.strip())
    return {}


def parse_multipart(body: bytes, content_type: str, limits: ImageLimits) -> RawInputs:
    """The `file` parts of a multipart/form-data body (one or more images); 422 if there are none."""
    parts = _split_multipart(body, content_type, max_parts=limits.max_images + 16)  # as many as form() took
    files = [p for p in parts if p.options.get(b"name") == b"file"]
    if not files:
        names = [p.options.get(b"name", b"").decode("latin-1") for p in parts]
        raise InvalidInput(f"file: missing; send each image as a multipart field named 'file' (got {names})")
    if not all(b"filename" in p.options for p in files):
        raise InvalidInput("file: must be an uploaded file, not a text field")
    check_count(len(files), limits)
    return RawInputs("files", [p.content for p in files], "file")


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
    if raw.kind == "multipart":
        raw = parse_multipart(raw.items[0], raw.content_type, limits)
    if raw.kind == "files":
        return [
            decode_image(data, in_channels=in_channels, limits=limits, name=f"{raw.field}[{i}]")
            for i, data in enumerate(raw.items)
        ]
    return [
        pixels_to_tensor(item, in_channels=in_channels, limits=limits, name=f"pixels[{i}]")
        for i, item in enumerate(raw.items)
    ]
