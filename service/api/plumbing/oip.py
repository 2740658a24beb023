"""The Open Inference Protocol's body formats: a JSON inference request, or its JSON header followed by binary
tensor data (the binary data extension, `Inference-Header-Content-Length`); and the response in kind, with
the classification extension's strings.

Binary tensors are little-endian and row-major; a BYTES tensor is each element's 4-byte length then its bytes.
"""

import base64
import binascii
import json
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from pydantic import ValidationError

from service.api.wire.oip import InferRequest, RequestInput, RequestOutput, ResponseOutput
from service.errors import BadRequest, InvalidInput, describe_validation_errors
from service.inference.images import ImageLimits
from service.inference.tensors import BatchOf, bytes_batch, classification, fp32_batch, uint8_batch

HEADER_LENGTH = "Inference-Header-Content-Length"
INPUT, LOGITS, PROBABILITIES = "input", "logits", "probabilities"
NUMPY_TYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "UINT8": np.dtype("u1")}


def parse_request(body: bytes, header_length: str | None, limits: ImageLimits) -> tuple[InferRequest, BatchOf]:
    """The request's JSON part, and its one input tensor as the batch maker the predictor runs."""
    size = len(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise BadRequest(f"{HEADER_LENGTH}: {header_length!r} is not a length within the body")
        size = int(header_length)
    try:
        request = InferRequest.model_validate_json(body[:size])
    except ValidationError as exc:
        raise BadRequest(f"inference request: {describe_validation_errors(exc.errors())}") from None
    tensor = request.inputs[0]
    if tensor.name != INPUT:
        raise BadRequest(f"unexpected input {tensor.name!r}; the model's input is {INPUT!r}")
    return request, batch_maker(tensor, body[size:], limits)


def batch_maker(tensor: RequestInput, binary: bytes, limits: ImageLimits) -> BatchOf:
    """FP32 (normalized), UINT8 (pixels) or BYTES (PNG/JPEG files), from JSON `data` or binary data."""
    name = f"input {tensor.name!r}"
    if tensor.datatype == "BYTES":
        return bytes_batch(_files(tensor, binary), name=tensor.name, limits=limits)
    dtype = NUMPY_TYPES.get(tensor.datatype)
    if dtype is None:
        raise BadRequest(f"{name}: datatype {tensor.datatype} is not served; send FP32, UINT8 or BYTES")
    count = int(np.prod(tensor.shape)) if all(d >= 0 for d in tensor.shape) else -1
    if _binary_size(tensor) is not None:
        if len(binary) != count * dtype.itemsize:
            raise BadRequest(f"{name}: {len(binary)} bytes of binary data do not hold shape {tensor.shape}")
        array = np.frombuffer(binary, dtype=dtype)
    else:
        array = _json_array(tensor, dtype, count)
    array = array.reshape(tensor.shape)
    make = fp32_batch if tensor.datatype == "FP32" else uint8_batch
    return make(array, name=tensor.name, limits=limits)


def _binary_size(tensor: RequestInput) -> int | None:
    size = (tensor.parameters or {}).get("binary_data_size")
    return int(size) if isinstance(size, int) else None


def _json_array(tensor: RequestInput, dtype: np.dtype[Any], count: int) -> np.ndarray[Any, Any]:
    name = f"input {tensor.name!r}"
    try:
        values = np.asarray(tensor.data, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise BadRequest(f"{name}: data must be numbers (flat or nested as the shape)") from None
    if values.size != count:
        raise BadRequest(f"{name}: {values.size} values do not fill shape {tensor.shape}")
    if dtype.kind == "u" and (
        not np.isfinite(values).all() or values.min(initial=0) < 0 or values.max(initial=0) > 255
    ):
        raise InvalidInput(f"{name}: UINT8 values must be 0..255")
    return values.astype(dtype)


def _files(tensor: RequestInput, binary: bytes) -> list[bytes]:
    """A BYTES tensor's elements: length-prefixed binary data, or base64 strings in JSON (PNG is not UTF-8)."""
    if _binary_size(tensor) is None:
        try:
            return [base64.b64decode(str(item), validate=True) for item in np.asarray(tensor.data).ravel()]
        except (binascii.Error, ValueError):
            raise BadRequest(f"input {tensor.name!r}: BYTES in JSON must be base64 strings") from None
    files, position = [], 0
    while position < len(binary):
        if position + 4 > len(binary):
            raise BadRequest(f"input {tensor.name!r}: binary BYTES data is cut short")
        (length,) = struct.unpack_from("<I", binary, position)
        files.append(binary[position + 4 : position + 4 + length])
        position += 4 + length
    if position != len(binary) or len(files) != int(np.prod(tensor.shape)):
        raise BadRequest(f"input {tensor.name!r}: binary BYTES data does not hold shape {tensor.shape}")
    return files


@dataclass(frozen=True)
class Encoded:
    """The response's outputs (JSON) and the binary data that follows the JSON, in output order."""

    outputs: list[ResponseOutput]
    binary: bytes


def encode_outputs(request: InferRequest, logits: torch.Tensor, class_names: tuple[str, ...]) -> Encoded:
    """The requested outputs (default: logits and probabilities), as JSON data or binary data."""
    wanted = request.outputs or [RequestOutput(name=LOGITS), RequestOutput(name=PROBABILITIES)]
    default_binary = bool((request.parameters or {}).get("binary_data_output", False))
    values = {LOGITS: logits, PROBABILITIES: torch.softmax(logits, dim=1)}
    outputs, chunks = [], []
    for output in wanted:
        if output.name not in values:
            raise BadRequest(f"unexpected output {output.name!r}; the outputs are {LOGITS!r} and {PROBABILITIES!r}")
        parameters = output.parameters or {}
        k = parameters.get("classification")
        tensor = values[output.name]
        if k is not None and (not isinstance(k, int) or k < 1):
            raise BadRequest(f"output {output.name!r}: classification must be a positive integer")
        strings = classification(tensor, class_names, k) if k else None
        shape = [len(strings), len(strings[0])] if strings else list(tensor.shape)
        datatype = "BYTES" if strings else "FP32"
        if not bool(parameters.get("binary_data", default_binary)):
            data = [s for row in strings for s in row] if strings else tensor.flatten().tolist()
            outputs.append(ResponseOutput(name=output.name, shape=shape, datatype=datatype, data=data))
            continue
        chunk = _bytes_tensor(strings) if strings else tensor.numpy().astype("<f4").tobytes()
        chunks.append(chunk)
        binary = {"binary_data_size": len(chunk)}
        outputs.append(ResponseOutput(name=output.name, shape=shape, datatype=datatype, parameters=binary))
    return Encoded(outputs, b"".join(chunks))


def _bytes_tensor(rows: list[list[str]]) -> bytes:
    return b"".join(struct.pack("<I", len(b)) + b for row in rows for b in (s.encode() for s in row))


def json_bytes(payload: object) -> bytes:
    """Compact JSON of plain data."""
    return json.dumps(payload, separators=(",", ":")).encode()
