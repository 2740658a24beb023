"""Every shape and parameter count of ../shared/docs/anchors.md."""

import pytest
import torch

from models.densenet import DenseBlock, transition_block
from models.registry import build_model, count_parameters
from models.resnet import Residual
from models.summary import summarize


def test_residual_keeps_shape() -> None:
    assert Residual(3, 3)(torch.rand(4, 3, 6, 6)).shape == (4, 3, 6, 6)


def test_residual_with_1x1_conv_and_stride_2_halves_and_widens() -> None:
    assert Residual(3, 6, use_1x1conv=True, stride=2)(torch.rand(4, 3, 6, 6)).shape == (4, 6, 3, 3)


def test_dense_block_concatenates_to_23_channels() -> None:
    block = DenseBlock(2, 3, 10)
    y = block(torch.rand(4, 3, 8, 8))
    assert y.shape == (4, 23, 8, 8)
    assert block.out_channels == 23


def test_transition_block_halves_resolution() -> None:
    assert transition_block(23, 10)(torch.rand(4, 23, 8, 8)).shape == (4, 10, 4, 4)


def test_resnet18_layer_shapes_at_224() -> None:
    rows = summarize(build_model("resnet18"), (1, 1, 224, 224))
    shapes = [(row.name, row.output_shape) for row in rows]
    assert shapes == [
        ("0", (1, 64, 112, 112)),  # stem conv
        ("1", (1, 64, 112, 112)),  # BN
        ("2", (1, 64, 112, 112)),  # ReLU
        ("3", (1, 64, 56, 56)),  # max-pool
        ("resnet_block1", (1, 64, 56, 56)),
        ("resnet_block2", (1, 128, 28, 28)),
        ("resnet_block3", (1, 256, 14, 14)),
        ("resnet_block4", (1, 512, 7, 7)),
        ("global_avg_pool", (1, 512, 1, 1)),
        ("fc", (1, 10)),
    ]


def test_resnet18_stage_shapes_at_96() -> None:
    rows = {row.name: row.output_shape for row in summarize(build_model("resnet18"), (1, 1, 96, 96))}
    assert [rows[f"resnet_block{i}"][1:] for i in range(1, 5)] == [
        (64, 24, 24),
        (128, 12, 12),
        (256, 6, 6),
        (512, 3, 3),
    ]


def test_densenet_channel_sequence() -> None:
    rows = summarize(build_model("densenet"), (1, 1, 96, 96))
    channels = [row.output_shape[1] for row in rows if row.name.startswith(("dense_block", "transition"))]
    assert [64, *channels] == [64, 192, 96, 224, 112, 240, 120, 248]
    assert build_model("densenet")[-1][-1].in_features == 248


@pytest.mark.parametrize(
    ("name", "count"),
    [("resnet18", 11_178_378), ("densenet", 758_226), ("bn_lenet", 44_878), ("lenet", 44_426)],
)
def test_parameter_counts(name: str, count: int) -> None:
    assert count_parameters(build_model(name)) == count


def test_bn_lenet_concise_has_the_same_parameter_count_as_bn_lenet() -> None:
    assert count_parameters(build_model("bn_lenet_concise")) == 44_878


def test_summary_reports_per_layer_parameters_that_add_up() -> None:
    model = build_model("resnet18")
    rows = summarize(model, (1, 1, 96, 96))
    assert sum(row.num_params for row in rows) == count_parameters(model)
    assert model.training, "summarize must restore the training mode"
