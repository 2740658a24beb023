"""Domain exceptions. The HTTP edge (service/main.py) maps each to a status code in one place."""


class ConvlabError(Exception):
    """Base class: `detail` is the human-readable message sent to clients."""

    status_code = 500

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class NotFound(ConvlabError):
    status_code = 404


class Conflict(ConvlabError):
    status_code = 409


class InvalidInput(ConvlabError):
    status_code = 422


class PayloadTooLarge(ConvlabError):
    status_code = 413


class DatasetUnavailable(InvalidInput):
    """A dataset's files are missing and downloads are off."""


class CheckpointError(InvalidInput):
    """A checkpoint is corrupt, of another format, or does not fit the architecture."""


class LeaseLost(ConvlabError):
    """A worker tried to write for a job attempt it no longer owns."""

    status_code = 409
