"""Settings: the one reader of the environment (variables prefixed CONVLAB_).

The fields are grouped by the subsystem that reads them (`settings.queue`, `settings.jobs`, `settings.serving`,
`settings.lab`, `settings.access`); each group reads its own variables, so every variable keeps its flat name:
`lease_seconds` in
the queue group is still CONVLAB_LEASE_SECONDS, `max_steps` in the lab group is CONVLAB_OPTLAB_MAX_STEPS.
"""

import ipaddress
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Unknown keywords are refused: a misspelt (or pre-grouping, flat) field name must not be silently ignored.
# An empty variable means "not set" (compose passes `${CONVLAB_ADMIN_TOKEN:-}` through as "").
FLAT = SettingsConfigDict(env_prefix="CONVLAB_", extra="forbid", env_ignore_empty=True)


class Group(BaseSettings):
    """A subsystem's settings, read from the flat CONVLAB_<FIELD> variables."""

    model_config = FLAT


class QueueSettings(Group):
    """The worker side: leases, polling, takeovers, checkpoints kept."""

    lease_seconds: float = Field(30.0, gt=0, description="A job's lease; heartbeats renew it.")
    poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for work.")
    max_lost_leases: int = Field(3, ge=1, description="A job whose worker is lost this often ends failed.")
    keep_checkpoints: int = Field(3, ge=1, description="Checkpoints kept per job, besides its best.")
    worker_retention_seconds: float = Field(
        86_400.0, gt=0, description="Rows of workers unseen this long are deleted (by any live worker)."
    )


class JobLimits(Group):
    """Bounds on a submitted job spec."""

    max_epochs: int = Field(200, ge=1)
    max_batch_size: int = Field(4096, ge=1)
    max_processes: int = Field(8, ge=1, description="Most processes one job may train across (distributed).")


class ServingSettings(Group):
    """The API process: prediction, its model cache and batching, live events."""

    model_cache_size: int = Field(4, ge=1, description="Trained models kept loaded for prediction (LRU).")
    predict_max_images: int = Field(256, ge=1)
    predict_max_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest request body for predict.")
    predict_max_pixels: int = Field(4096 * 4096, ge=1, description="Largest decoded image (width x height).")
    predict_batch_max_size: int = Field(
        32, ge=1, description="Dynamic batching: most images in one forward pass (1 turns batching off)."
    )
    predict_batch_max_delay_ms: float = Field(
        0.0,
        ge=0,
        description="Dynamic batching: longest wait for more requests to join a batch (0: a few turns of the event "
        "loop; the requests that arrive during a forward pass form the next batch, so batches grow with the load).",
    )
    predict_max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="Load shedding (off by default, see docs/benchmarks-serve.md): a predict request that would "
        "wait longer than this behind the others in its API process is refused at once with 503 and Retry-After "
        "(0: never refuse).",
    )
    inference_threads: int = Field(
        0, ge=0, description="torch intra-op threads for predictions in the API process (0: torch's default)."
    )
    predict_threads: int = Field(
        0, ge=0, description="Threads doing prediction work at once in the API process (0: the CPU count, min 2)."
    )
    events_poll_seconds: float = Field(0.5, gt=0, description="How often /jobs/{id}/events looks for news.")
    inference_backend: Literal["torch", "onnxruntime", "auto"] = Field(
        "auto",
        description="CONVLAB_INFERENCE_BACKEND: what runs a loaded model's forward pass: torch, onnxruntime (the "
        "checkpoint's verified ONNX export, made at the first load), or auto (torch at once, then whichever a "
        "short background measurement at the first load of an architecture on this device finds faster).",
    )
    explain_max_seconds: float = Field(
        30.0, gt=0, description="CONVLAB_EXPLAIN_MAX_SECONDS: work one explain call may do before it is stopped."
    )


class LabSettings(Group):
    """Optimization-lab bounds on one request (each violation answers 422)."""

    model_config = SettingsConfigDict(env_prefix="CONVLAB_OPTLAB_", extra="forbid", env_ignore_empty=True)

    max_expression_length: int = Field(500, ge=1, description="Longest objective expression.")
    max_depth: int = Field(40, ge=1, description="Deepest nesting of an expression.")
    max_exponent: float = Field(100.0, gt=0, description="Largest |constant exponent| in an expression.")
    max_dimension: int = Field(16, ge=1, description="Most coordinates of an objective.")
    max_steps: int = Field(20_000, ge=1, description="Most steps of one trajectory.")
    max_optimizers: int = Field(8, ge=1, description="Most optimizers compared in one call.")
    max_grid: int = Field(201, ge=2, description="Most grid points per axis of a contour grid.")
    max_linreg_epochs: int = Field(20, ge=1, description="Most epochs of a linear-regression run.")


class AuthMode(StrEnum):
    """Whether requests need a token: `auto` is off on a loopback address and required on any other."""

    required = "required"
    off = "off"
    auto = "auto"


class AccessSettings(Group):
    """Who may call the API, and how much one caller may ask of it (docs/security.md)."""

    auth: AuthMode = Field(AuthMode.auto, description="CONVLAB_AUTH: required, off, or auto (off on loopback only).")
    admin_token: SecretStr | None = Field(
        None, min_length=32, description="An admin token a deployment supplies instead of the bootstrap one."
    )
    max_active_jobs: int = Field(16, ge=1, description="Queued plus running jobs one token (or address) may have.")
    # No per-caller predict limit by default: one application calling convlab is one caller, and 100/s capped
    # it at a sixteenth of what one process serves. The predict queue's load shedding (503) bounds the server.
    predict_rate: float = Field(0.0, ge=0, description="Predict requests per second per caller (0: no limit).")
    predict_burst: int = Field(200, ge=1, description="Predict requests a caller may send at once.")
    lab_rate: float = Field(10.0, ge=0, description="Lab requests per second per caller (0: no limit).")
    lab_burst: int = Field(20, ge=1, description="Lab requests a caller may send at once.")
    lab_max_seconds: float = Field(5.0, gt=0, description="CONVLAB_LAB_MAX_SECONDS: work one lab call may do.")
    lab_concurrency: int = Field(0, ge=0, description="Lab computations at once (0: the CPU count).")
    lab_queue_seconds: float = Field(1.0, ge=0, description="How long a lab call waits for a free slot, then 429.")
    max_auth_failures: int = Field(10, ge=1, description="Failed authentications from one address before 429.")
    auth_failure_window_seconds: float = Field(60.0, gt=0, description="Window in which those failures count.")
    auth_lockout_seconds: float = Field(60.0, gt=0, description="How long such an address is refused.")
    max_body_bytes: int = Field(1024 * 1024, ge=1, description="Largest request body, except predict's own limit.")
    cors_origins: list[str] = Field(default_factory=list, description="Origins allowed by CORS (none: CORS off).")
    metrics_public: bool = Field(False, description="Serve /metrics without a token (else: admin or metrics scope).")

    def required_for(self, host: str | None) -> bool:
        """Whether requests need a token when the API binds `host` (None: unknown, treated as exposed)."""
        if self.auth is not AuthMode.auto:
            return self.auth is AuthMode.required
        return not (host is not None and is_loopback(host))


@lru_cache(maxsize=64)  # asked on every request (auth_required) of the few addresses a process binds
def is_loopback(host: str) -> bool:
    """Whether `host` (an address or `localhost`) can be reached from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class FleetSettings(Group):
    """What a worker tells the fleet it can run."""

    simulate_device: Literal["", "cpu", "cuda"] = Field(
        "",
        description="Tests only: advertise this device kind (cuda) instead of the detected one; "
        "the worker still trains on its own device.",
    )


class DownloadSettings(Group):
    """Datasets fetched on first use, when CONVLAB_ALLOW_DOWNLOAD is true (docs/training.md)."""

    model_config = SettingsConfigDict(env_prefix="CONVLAB_DATASET_", extra="forbid", env_ignore_empty=True)

    mirror: str | None = Field(
        None,
        pattern=r"^https?://",
        description="CONVLAB_DATASET_MIRROR: a base URL holding the datasets' files, used instead of upstream's.",
    )


class UploadSettings(Group):
    """Uploaded datasets: what one archive may hold, and what one token may store (docs/security.md)."""

    model_config = SettingsConfigDict(env_prefix="CONVLAB_DATASET_", extra="forbid", env_ignore_empty=True)

    max_upload_bytes: int = Field(1024**3, ge=1, description="Largest archive one upload may send (413 past it).")
    max_files: int = Field(200_000, ge=1, description="Most entries (files and folders) in one archive.")
    max_file_bytes: int = Field(32 * 1024**2, ge=1, description="Largest uncompressed file in an archive.")
    max_total_bytes: int = Field(4 * 1024**3, ge=1, description="Most uncompressed bytes in one archive.")
    max_ratio: float = Field(200.0, gt=1, description="Largest uncompressed / compressed ratio of an archive.")
    max_pixels: int = Field(4096 * 4096, ge=1, description="Largest image (width x height), checked before decoding.")
    max_classes: int = Field(1000, ge=2, description="Most classes of one dataset.")
    max_ingested_bytes: int = Field(
        256 * 1024**2, ge=1, description="Largest ingested dataset (images x channels x size^2), checked while reading."
    )
    max_stored_bytes: int = Field(
        4 * 1024**3, ge=1, description="Bytes of ingested datasets one token (or address) may store (413 past it)."
    )


class Settings(BaseSettings):
    """Service configuration: the deployment's own fields, then one group per subsystem."""

    model_config = FLAT

    state_dir: Path = Field(Path(".convlab"), description="Local state: the default SQLite database lives here.")
    database_url: str = Field("", description="SQLAlchemy URL; default: a SQLite file in state_dir.")
    data_dir: Path = Field(
        Path(".convlab/datasets"),
        description="Datasets in torchvision's layout (FashionMNIST/raw, ...); default: `datasets` in state_dir.",
    )
    allow_download: bool = Field(False, description="Download missing datasets through torchvision.")
    device: str = Field("auto", description="Training/inference device: auto, cpu, cuda, cuda:N.")
    migrate_on_start: bool = Field(True, description="The API applies database migrations when it starts.")
    log_format: Literal["json", "text"] = Field("text", description="CONVLAB_LOG_FORMAT: json lines or text.")
    db_statement_timeout_ms: int = Field(
        30_000, ge=0, description="PostgreSQL: longest statement of an API request (0: none)."
    )
    db_lock_timeout_ms: int = Field(10_000, ge=0, description="PostgreSQL: longest lock wait of an API request.")

    queue: QueueSettings = Field(default_factory=QueueSettings)
    jobs: JobLimits = Field(default_factory=JobLimits)
    serving: ServingSettings = Field(default_factory=ServingSettings)
    lab: LabSettings = Field(default_factory=LabSettings)
    access: AccessSettings = Field(default_factory=AccessSettings)
    bind_host: str | None = Field(
        None, description="The address the API binds; `convlab serve` sets it (it decides CONVLAB_AUTH=auto)."
    )
    fleet: FleetSettings = Field(default_factory=FleetSettings)
    downloads: DownloadSettings = Field(default_factory=DownloadSettings)
    uploads: UploadSettings = Field(default_factory=UploadSettings)

    @model_validator(mode="before")
    @classmethod
    def _default_data_dir(cls, values: Any) -> Any:
        """Without a configured data directory, datasets live under the state directory."""
        if isinstance(values, dict) and not values.get("data_dir"):
            state_dir = values.get("state_dir") or cls.model_fields["state_dir"].default
            values = {**values, "data_dir": Path(state_dir) / "datasets"}
        return values

    @model_validator(mode="after")
    def _default_database(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.state_dir / 'convlab.db').resolve()}"
        return self

    @property
    def auth_required(self) -> bool:
        """Whether every non-public request needs a token, given CONVLAB_AUTH and the address the API binds."""
        return self.access.required_for(self.bind_host)


def variable_names() -> set[str]:
    """Every environment variable the settings read (CONVLAB_AUTH, CONVLAB_OPTLAB_MAX_STEPS, ...)."""
    names = set()
    for name, field in Settings.model_fields.items():
        group = field.annotation
        if isinstance(group, type) and issubclass(group, Group):
            prefix = str(group.model_config.get("env_prefix", ""))
            names |= {f"{prefix}{inner}".upper() for inner in group.model_fields}
        else:
            names.add(f"CONVLAB_{name}".upper())
    return names


@lru_cache
def get_settings() -> Settings:
    """Settings read from the environment once per process."""
    return Settings()
