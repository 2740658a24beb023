"""Settings: the one reader of the environment (variables prefixed CONVLAB_)."""

from functools import lru_cache
from pathlib import Path

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Service configuration; every field can be set as CONVLAB_<FIELD_NAME>."""

    model_config = SettingsConfigDict(env_prefix="CONVLAB_", extra="ignore")

    state_dir: Path = Field(Path(".convlab"), description="Local state: the default SQLite database lives here.")
    database_url: str = Field("", description="SQLAlchemy URL; default: a SQLite file in state_dir.")
    data_dir: Path = Field(Path("data"), description="Datasets in torchvision's layout (FashionMNIST/raw, ...).")
    allow_download: bool = Field(False, description="Download missing datasets through torchvision.")
    device: str = Field("auto", description="Training/inference device: auto, cpu, cuda, cuda:N.")

    # queue and worker
    lease_seconds: float = Field(30.0, gt=0, description="A job's lease; heartbeats renew it.")
    poll_seconds: float = Field(1.0, gt=0, description="How often an idle worker looks for work.")
    max_lost_leases: int = Field(3, ge=1, description="A job whose worker is lost this often ends failed.")
    keep_checkpoints: int = Field(3, ge=1, description="Checkpoints kept per job, besides its best.")

    # limits on job specs
    max_epochs: int = Field(200, ge=1)
    max_batch_size: int = Field(4096, ge=1)

    # serving
    model_cache_size: int = Field(4, ge=1, description="Trained models kept loaded for prediction (LRU).")
    predict_max_images: int = Field(256, ge=1)
    predict_max_bytes: int = Field(10 * 1024 * 1024, ge=1, description="Largest request body for predict.")
    predict_max_pixels: int = Field(4096 * 4096, ge=1, description="Largest decoded image (width x height).")
    predict_batch_max_size: int = Field(
        32, ge=1, description="Dynamic batching: most images in one forward pass (1 turns batching off)."
    )
    predict_batch_max_delay_ms: float = Field(
        2.0, ge=0, description="Dynamic batching: longest wait for more requests to join a batch."
    )
    events_poll_seconds: float = Field(0.5, gt=0, description="How often /jobs/{id}/events looks for news.")
    migrate_on_start: bool = Field(True, description="The API applies database migrations when it starts.")

    @model_validator(mode="after")
    def _default_database(self) -> "Settings":
        if not self.database_url:
            self.database_url = f"sqlite:///{(self.state_dir / 'convlab.db').resolve()}"
        return self


@lru_cache
def get_settings() -> Settings:
    """Settings read from the environment once per process."""
    return Settings()
