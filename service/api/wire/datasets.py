"""Wire types of uploaded datasets."""

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class SplitCounts(BaseModel):
    train: int
    test: int = Field(description="Held out: the given val/ or test/ folder, or the seeded val_fraction.")


class DatasetVersionRead(BaseModel):
    """One immutable version of an uploaded dataset."""

    model_config = ConfigDict(from_attributes=True)

    name: str = Field(examples=["flowers"])
    version: int = Field(examples=[2])
    ref: str = Field(description="What a job spec names: `name@version`.", examples=["flowers@2"])
    sha256: str = Field(description="The content address: the same images give the same address.")
    created_at: datetime
    owner: str | None = Field(description="The token that uploaded it (none with auth off).")
    classes: list[str] = Field(description="Class names: the folder names, sorted; label i is classes[i].")
    counts: dict[str, SplitCounts] = Field(description="Images per class and split.")
    size: int = Field(description="Side in pixels the images are stored at.")
    channels: int = Field(description="1 when every image is grayscale, else 3.")
    mean: list[float] = Field(description="Per channel, of the training split, in [0, 1].")
    std: list[float]
    split: str = Field(description="`given` (train/ and val/ or test/ folders), or how the held-out split was made.")
    train_images: int
    test_images: int
    stored_bytes: int = Field(description="Size of the ingested form, counted against the owner's quota.")


class DatasetSummary(BaseModel):
    name: str
    versions: list[int]
    latest: str = Field(description="The latest version's ref.", examples=["flowers@2"])


class DatasetRead(BaseModel):
    name: str
    versions: list[DatasetVersionRead]
