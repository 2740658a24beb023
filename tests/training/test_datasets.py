"""Datasets: real IDX files as uint8 tensors, clear errors, synthetic data, and the shared batch transform."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.transforms import functional as TF

from service.errors import DatasetUnavailable, InvalidInput
from service.training import check_dataset_available, get_dataset_info, load_dataset, preprocess
from service.training.synthetic import make_synthetic


def test_fashion_mnist_loads_as_uint8_tensors_with_the_book_class_names(data_dir: Path) -> None:
    splits = load_dataset("fashion_mnist", data_dir, train_subset=1000)
    assert splits.train.images.shape == (1000, 1, 28, 28)
    assert splits.train.images.dtype == torch.uint8
    assert splits.test.images.shape == (10000, 1, 28, 28)
    assert splits.train.labels.dtype == torch.int64
    assert set(splits.train.labels.tolist()) == set(range(10))
    assert splits.info.class_names[0] == "T-shirt/top" and splits.info.class_names[9] == "Ankle boot"


def test_train_subset_takes_the_first_examples_and_changes_the_checksum(data_dir: Path) -> None:
    small = load_dataset("fashion_mnist", data_dir, train_subset=500, test_subset=100)
    large = load_dataset("fashion_mnist", data_dir, train_subset=600, test_subset=100)
    assert torch.equal(small.train.images, large.train.images[:500])
    assert small.checksum != large.checksum
    assert small.checksum == load_dataset("fashion_mnist", data_dir, train_subset=500, test_subset=100).checksum


def test_mnist_loads_from_its_own_folder(data_dir: Path) -> None:
    splits = load_dataset("mnist", data_dir, train_subset=10, test_subset=10)
    assert splits.info.class_names == tuple(str(d) for d in range(10))
    assert splits.train.images.shape == (10, 1, 28, 28)


def test_missing_dataset_directory_names_the_directory_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable) as excinfo:
        check_dataset_available("fashion_mnist", tmp_path / "nowhere", allow_download=False)
    message = excinfo.value.detail
    assert str((tmp_path / "nowhere" / "FashionMNIST" / "raw").resolve()) in message
    assert "CONVLAB_DATA_DIR" in message and "CONVLAB_ALLOW_DOWNLOAD" in message


def test_load_dataset_refuses_missing_files_without_downloading(tmp_path: Path) -> None:
    with pytest.raises(DatasetUnavailable):
        load_dataset("cifar10", tmp_path, allow_download=False)
    assert not any(tmp_path.iterdir())


def test_cifar10_without_its_meta_file_is_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        (folder / name).write_bytes(b"")
    with pytest.raises(DatasetUnavailable, match=r"did not find batches\.meta"):
        check_dataset_available("cifar10", tmp_path, allow_download=False)


def test_corrupt_cifar10_files_are_reported_as_unavailable(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"]:
        (folder / name).write_bytes(b"not cifar")
    with pytest.raises(DatasetUnavailable, match="unusable"):
        load_dataset("cifar10", tmp_path)


def test_unknown_dataset_is_invalid_input() -> None:
    with pytest.raises(InvalidInput, match="unknown dataset"):
        get_dataset_info("imagenet")


def test_synthetic_data_needs_no_files_and_is_the_same_every_time(tmp_path: Path) -> None:
    check_dataset_available("synthetic", tmp_path, allow_download=False)
    first = load_dataset("synthetic", tmp_path)
    images, labels = make_synthetic(train=True)  # generated again, not cached
    assert torch.equal(first.train.images, images) and torch.equal(first.train.labels, labels)
    assert first.train.images.dtype == torch.uint8 and first.train.images.shape[1:] == (1, 28, 28)
    assert len(set(first.train.labels.tolist())) == 10


def test_preprocess_scales_to_unit_range_and_normalizes_per_channel() -> None:
    images = torch.tensor([0, 255], dtype=torch.uint8).view(2, 1, 1, 1).expand(2, 3, 4, 4).contiguous()
    plain = preprocess(images, size=4, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    assert plain[0].max() == 0.0 and plain[1].min() == 1.0
    normed = preprocess(images, size=4, mean=(0.5, 0.0, 1.0), std=(0.5, 1.0, 2.0))
    assert torch.allclose(normed[1, :, 0, 0], torch.tensor([1.0, 1.0, 0.0]))
    assert torch.allclose(normed[0, :, 0, 0], torch.tensor([-1.0, 0.0, -0.5]))


def test_preprocess_resize_matches_the_seeds_per_image_pil_resize(data_dir: Path) -> None:
    images = load_dataset("fashion_mnist", data_dir, train_subset=8).train.images
    batch = preprocess(images, size=96, mean=(0.0,), std=(1.0,))
    assert batch.shape == (8, 1, 96, 96)
    for i in range(8):
        pil = Image.fromarray(images[i, 0].numpy())
        seed_style = TF.to_tensor(TF.resize(pil, [96, 96]))  # the seed: Resize then ToTensor, per image
        # PIL rounds its result to uint8; the batch transform keeps floats.
        assert np.abs((batch[i] - seed_style).numpy()).max() <= 1.0 / 255 + 1e-6
