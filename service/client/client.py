"""A typed client of the convlab API (httpx), sharing the server's pydantic models.

    from service.client import Client
    with Client() as convlab:                       # CONVLAB_URL, CONVLAB_TOKEN (or url=..., token=...)
        job = convlab.submit(architecture="bn_lenet", dataset="fashion_mnist", epochs=2)
        for event in convlab.events(job.id):        # reconnects with Last-Event-ID if the connection drops
            print(event.kind, event.data)
        convlab.push_dataset("flowers/", name="flowers")  # class folders, packed into a zip and streamed
        convlab.create_model("fashion")
        convlab.register("fashion", job.id)                # the job's best checkpoint as version 1
        convlab.move_alias("fashion", "prod", 1)

Every failure raises `ClientError` with the HTTP status (None when the server could not be reached) and the
server's `detail`.
"""

import builtins
import os
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TypeAlias, cast

import httpx
from httpx_sse import SSEError, connect_sse
from pydantic import BaseModel, TypeAdapter
from typing_extensions import TypeIs

from service.api.wire.architectures import ArchitectureRead, ArchitectureSummary
from service.api.wire.explain import ExplainMethod, ExplainResponse, explain_query
from service.api.wire.history import CheckpointRead, HistoryRead
from service.api.wire.jobs import JobCreate, JobPage, JobRead
from service.api.wire.predict import PredictResponse
from service.api.wire.registry import ModelPredictResponse
from service.api.wire.system import HealthRead, VersionRead
from service.client.datasets import DatasetCalls
from service.client.http import ClientError, detail, validated
from service.client.registry import RegistryCalls
from service.jobspec.status import JobStatus
from service.optlab import requests as rq
from service.optlab import results as rs

FINISHED = frozenset(s.value for s in JobStatus if s.finished)
UNSTORED = frozenset({"progress", "deleted"})  # event kinds the server sends without an id
RECONNECT_SECONDS = 60.0  # how long `events` keeps trying to reconnect before giving up
ImageFormat = Literal["png", "svg"]
if TYPE_CHECKING:
    import numpy as np

PredictInput: TypeAlias = "str | os.PathLike[str] | bytes | np.ndarray"  # a file, its bytes, or a [H, W] array
Body: TypeAlias = Mapping[str, Any] | None  # a request's fields, besides or instead of its model


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event of a job: `kind` is status, epoch, download (stored, with their `id`), progress
    or deleted (id None)."""

    kind: str
    data: dict[str, Any]
    id: int | None = None

    @property
    def final(self) -> bool:
        """The job has finished (or was deleted): no event follows."""
        return self.kind == "deleted" or (self.kind == "status" and self.data.get("status") in FINISHED)


class Client(RegistryCalls, DatasetCalls):
    """The convlab API at `url` (default: CONVLAB_URL, else http://127.0.0.1:8000), as `token`
    (default: CONVLAB_TOKEN; none: no Authorization header): jobs, predictions and the lab here, the model
    registry (registry.py) and uploaded datasets (datasets.py) through the classes it is made of."""

    # jobs

    def submit(self, spec: JobCreate | Body = None, /, **fields: Any) -> JobRead:
        """Queue a job: `spec` and/or keyword fields of JobCreate (left-out fields get the book's recipe)."""
        body = validated(JobCreate, spec, fields)
        response = self.request("POST", "/jobs", json=body.model_dump(mode="json", exclude_unset=True))
        return JobRead.model_validate(response.json())

    def get(self, job_id: int) -> JobRead:
        """One job: status, spec, progress, outcome."""
        return self._get(JobRead, f"/jobs/{job_id}")

    def list(self, *, status: str | None = None, limit: int = 50, offset: int = 0) -> JobPage:
        """A page of jobs, newest first."""
        params: dict[str, Any] = {"limit": limit, "offset": offset} | ({"status": status} if status else {})
        return self._get(JobPage, "/jobs", params=params)

    def cancel(self, job_id: int) -> JobRead:
        """Cancel a queued job, or ask a running one to stop at its next batch."""
        return JobRead.model_validate(self.request("POST", f"/jobs/{job_id}/cancel").json())

    def delete(self, job_id: int) -> None:
        """Delete a finished job with everything it recorded."""
        self.request("DELETE", f"/jobs/{job_id}")

    def wait(self, job_id: int, *, timeout: float | None = None, poll_seconds: float = 0.5) -> JobRead:
        """The job once it has finished; TimeoutError after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (job := self.get(job_id)).status.value not in FINISHED:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is still {job.status.value} after {timeout} s")
            time.sleep(poll_seconds)
        return job

    def events(self, job_id: int, *, after: int = 0, reconnect_seconds: float = RECONNECT_SECONDS) -> Iterator[Event]:
        """The job's events after event id `after`, live, until it finishes.

        A dropped connection (a restarted server, a proxy's timeout) is reopened with Last-Event-ID, so no
        stored event is missed or repeated; ClientError once reconnecting fails for `reconnect_seconds`.
        """
        last, failing_since = after, None
        while True:
            try:
                for event in self._event_stream(job_id, last):
                    failing_since = None
                    last = event.id if event.id is not None else last
                    yield event
                    if event.final:
                        return
                if self.get(job_id).status.value in FINISHED:  # ended cleanly, its final event already sent
                    return
                continue  # ended cleanly mid-job (a proxy, a stopping server): reopen at once
            except httpx.TransportError as exc:
                error = str(exc) or type(exc).__name__
            except ClientError as exc:
                if exc.status is not None:
                    raise
                error = exc.detail  # the server is not answering (yet): keep trying
            failing_since = failing_since or time.monotonic()
            if time.monotonic() - failing_since > reconnect_seconds:
                raise ClientError(None, f"lost the event stream of job {job_id}: {error}")
            time.sleep(0.5)

    def _event_stream(self, job_id: int, after: int) -> Iterator[Event]:
        headers = {"Last-Event-ID": str(after)} if after else {}
        timeout = httpx.Timeout(self._http.timeout.connect, read=None)
        with connect_sse(self._http, "GET", f"/jobs/{job_id}/events", headers=headers, timeout=timeout) as source:
            if source.response.is_error:
                source.response.read()
                raise ClientError(source.response.status_code, detail(source.response))
            try:
                for sse in source.iter_sse():
                    if not sse.data:  # a keep-alive or a `retry:` advice, no event
                        continue
                    # SSE keeps the last id for events sent without one (progress, deleted): not theirs
                    stored = sse.id and sse.event not in UNSTORED
                    yield Event(sse.event, sse.json(), int(sse.id) if stored else None)
            except SSEError as exc:
                raise ClientError(source.response.status_code, f"not an event stream: {exc}") from exc

    def history(self, job_id: int, *, max_points: int | None = None) -> HistoryRead:
        """Loss per logged step and metrics per finished epoch."""
        params = {"max_points": max_points} if max_points else {}
        return self._get(HistoryRead, f"/jobs/{job_id}/history", params=params)

    def history_plot(self, job_id: int, *, format: ImageFormat = "png") -> bytes:
        """The loss and accuracy curves as PNG or SVG bytes."""
        return self.request("GET", f"/jobs/{job_id}/history.{format}").content

    def checkpoints(self, job_id: int) -> builtins.list[CheckpointRead]:
        """The checkpoints kept, oldest first; `best` marks the one predictions use."""
        response = self.request("GET", f"/jobs/{job_id}/checkpoints")
        return TypeAdapter(list[CheckpointRead]).validate_python(response.json())

    def checkpoint(self, job_id: int, epoch: int) -> bytes:
        """The safetensors file of the checkpoint taken after `epoch` epochs."""
        return self.request("GET", f"/jobs/{job_id}/checkpoints/{epoch}").content

    def predict(
        self, job_id: int, images: Sequence[PredictInput], *, top_k: int = 3, checkpoint: int | None = None
    ) -> PredictResponse:
        """Classify image files, encoded image bytes, or [H, W] pixel arrays (0..255), in order."""
        params: dict[str, Any] = {"top_k": top_k} | ({"checkpoint": checkpoint} if checkpoint is not None else {})
        response = self.request("POST", f"/jobs/{job_id}/predict", params=params, **_inputs(images))
        return PredictResponse.model_validate(response.json())

    def explain(
        self,
        job_id: int,
        images: Sequence[PredictInput],
        *,
        method: ExplainMethod = "gradcam",
        target: int | None = None,
        steps: int = 32,
        checkpoint: int | None = None,
    ) -> ExplainResponse:
        """Predict and explain images (as `predict` takes them): a heatmap in [0, 1] per image."""
        params = explain_query(method=method, target=target, steps=steps, checkpoint=checkpoint)
        response = self.request("POST", f"/jobs/{job_id}/explain", params=params, **_inputs(images))
        return ExplainResponse.model_validate(response.json())

    def explain_png(self, job_id: int, images: Sequence[PredictInput], **options: Any) -> bytes:
        """The heatmaps drawn over the images, one PNG (rows of up to 8 tiles); `options` as `explain` takes them."""
        params = explain_query(**options) | {"format": "png"}
        return self.request("POST", f"/jobs/{job_id}/explain", params=params, **_inputs(images)).content

    def predict_by_name(
        self, name: str, images: Sequence[PredictInput], *, alias: str | None = None, version: int | None = None
    ) -> ModelPredictResponse:
        """`predict` by a model's name: alias prod, or `alias`, or `version`."""
        params = {k: v for k, v in (("alias", alias), ("version", version)) if v is not None}
        files = [("file", (_image_name(image, i), _image_bytes(image))) for i, image in enumerate(images)]
        response = self.request("POST", f"/models/{name}/predict", params=params, files=files)
        return ModelPredictResponse.model_validate(response.json())

    # the catalogue and the service

    def architectures(self) -> builtins.list[ArchitectureRead]:
        """The architectures jobs can train."""
        return TypeAdapter(list[ArchitectureRead]).validate_python(self.request("GET", "/architectures").json())

    def architecture(self, name: str, *, input_size: int | None = None) -> ArchitectureSummary:
        """One architecture's layer table."""
        params = {"input_size": input_size} if input_size else {}
        return self._get(ArchitectureSummary, f"/architectures/{name}", params=params)

    def version(self) -> VersionRead:
        """The server's convlab, Python and torch versions."""
        return self._get(VersionRead, "/version")

    def health(self) -> HealthRead:
        """Database and workers, as the server sees them."""
        return self._get(HealthRead, "/health")

    # the optimization lab

    def functions(self) -> rs.FunctionCatalogue:
        """The preset functions and the optimizer names."""
        return cast(rs.FunctionCatalogue, self.request("GET", "/functions").json())

    def trajectories(
        self, request: rq.TrajectoryRequest | Body = None, /, **fields: Any
    ) -> rs.Comparison | rs.SingleTrajectory:
        """One optimizer's trajectory (`optimizer`), or several compared (`optimizers`)."""
        return cast(
            rs.Comparison | rs.SingleTrajectory, self._lab("/trajectories", rq.TrajectoryRequest, request, fields)
        )

    def trajectory_plot(
        self,
        request: rq.PlotRequest | Mapping[str, Any] | None = None,
        /,
        *,
        format: ImageFormat = "png",
        **fields: Any,
    ) -> bytes:
        """The trajectories drawn over the function's contours, as PNG or SVG bytes."""
        body = validated(rq.PlotRequest, request, fields).model_dump(mode="json", exclude_unset=True)
        return self.request("POST", "/trajectories/plot", params={"format": format}, json=body).content

    def grid(self, request: rq.GridRequest | Body = None, /, **fields: Any) -> rs.Grid1D | rs.Grid2D:
        """The function on a 1-D or 2-D grid."""
        return cast(rs.Grid1D | rs.Grid2D, self._lab("/trajectories/grid", rq.GridRequest, request, fields))

    def convexity(self, request: rq.ConvexityRequest | Body = None, /, **fields: Any) -> rs.Convexity:
        """A convexity verdict on a box, with its evidence."""
        return cast(rs.Convexity, self._lab("/analysis/convexity", rq.ConvexityRequest, request, fields))

    def stationary_point(
        self, request: rq.StationaryPointRequest | Body = None, /, **fields: Any
    ) -> rs.StationaryPoint:
        """Classify a point: minimum, maximum, saddle, degenerate or not stationary."""
        path = "/analysis/stationary-point"
        return cast(rs.StationaryPoint, self._lab(path, rq.StationaryPointRequest, request, fields))

    def constrained(self, request: rq.ConstrainedRequest | Body = None, /, **fields: Any) -> rs.Constrained:
        """Minimize over a ball or half-space."""
        return cast(rs.Constrained, self._lab("/analysis/constrained", rq.ConstrainedRequest, request, fields))

    def linreg(self, request: rq.LinregRequest | Body = None, /, **fields: Any) -> rs.Linreg:
        """The book's linear-regression optimizer comparison."""
        return cast(rs.Linreg, self._lab("/optimizers/linreg", rq.LinregRequest, request, fields))

    def _lab(self, path: str, model: type[BaseModel], request: Any, fields: Mapping[str, Any]) -> Any:
        body = validated(model, request, fields).model_dump(mode="json", exclude_unset=True)
        return self.request("POST", path, json=body).json()


def _is_array(value: object) -> TypeIs["np.ndarray"]:
    """Whether `value` is a numpy array; numpy is not imported for it (a caller with an array has loaded it)."""
    numpy = sys.modules.get("numpy")
    return numpy is not None and isinstance(value, numpy.ndarray)


def _inputs(images: Sequence[PredictInput]) -> dict[str, Any]:
    """The request body of predict or explain: JSON pixels when every image is an array, else file uploads."""
    if images and all(_is_array(image) for image in images):
        return {"json": {"pixels": [cast("np.ndarray", image).tolist() for image in images]}}
    return {"files": [("file", (_image_name(image, i), _image_bytes(image))) for i, image in enumerate(images)]}


def _image_name(image: PredictInput, index: int) -> str:
    return f"image{index}" if isinstance(image, bytes) or _is_array(image) else Path(image).name


def _image_bytes(image: PredictInput) -> bytes:
    if isinstance(image, bytes):
        return image
    if _is_array(image):
        raise ClientError(None, "predict: send either pixel arrays or image files/bytes in one call, not both")
    return Path(image).read_bytes()  # OSError when it cannot be read
