"""Reading predict input from an HTTP request: the body's bytes, handed on to be parsed off the event loop.

Multipart, JSON and raw image bodies alike are read whole (BodySizeLimit bounds them by predict_max_bytes) and
parsed in the thread that decodes the images (service/inference/inputs.py), so the event loop only moves bytes.
A raw body (`Content-Type: image/png` or `image/jpeg`) is one image, the plainest form for programs.
"""

from fastapi import Request
from starlette.requests import ClientDisconnect

from service.errors import BadRequest, UnsupportedMediaType
from service.inference import RawInputs

IMAGE_TYPES = ("image/png", "image/jpeg")  # a raw body of one image (the decoder reads the bytes, not the label)


async def read_body(request: Request) -> bytes:
    """The whole body; 400 (to nobody) if the client went away while sending it, rather than a logged 500."""
    try:
        return await request.body()
    except ClientDisconnect:
        raise BadRequest("the client disconnected before sending the whole body") from None


async def read_inputs(request: Request) -> RawInputs | bytes:
    """A multipart body to split, or the JSON body's bytes, both parsed off the event loop."""
    header = request.headers.get("content-type", "")
    content_type = header.split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        return RawInputs.of_multipart(await read_body(request), header)
    if content_type in ("application/json", ""):
        return await read_body(request)
    if content_type in IMAGE_TYPES:
        return RawInputs("files", [await read_body(request)], "body")
    raise UnsupportedMediaType(
        f"content-type {content_type!r} is not supported; send multipart/form-data (field 'file'), JSON, "
        "or one image as the body (image/png or image/jpeg)"
    )
