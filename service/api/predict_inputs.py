"""Reading predict input from an HTTP request: multipart uploads here, JSON bodies handed on as bytes."""

from fastapi import Request
from starlette.datastructures import UploadFile

from service.errors import InvalidInput, UnsupportedMediaType
from service.inference import ImageLimits, RawInputs, check_count


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
