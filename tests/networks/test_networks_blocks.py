"""Building blocks of nnunet_lossplug.networks: residual formulas recomputed with torch.nn.functional,
He initialisation against dynamic_network_architectures, and the shape helpers' errors."""

import pytest
import torch
import torch.nn.functional as F
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from torch import nn

from nnunet_lossplug.networks.blocks import LayerOps, PreActivationResidualBlock, ResidualBlock, he_initialize
from nnunet_lossplug.networks.geometry import (
    check_input,
    cumulative_scales,
    per_axis,
    same_padding,
    spatial_dims_of,
)

torch.set_num_threads(1)
SLOPE = 1e-2


def _instance_norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """Instance norm with the module's eps and affine parameters, written out by hand."""
    axes = tuple(range(2, x.ndim))
    mean = x.mean(dim=axes, keepdim=True)
    var = x.var(dim=axes, keepdim=True, unbiased=False)
    shape = (1, -1) + (1,) * (x.ndim - 2)
    return (x - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(shape) + norm.bias.view(shape)


def _leaky(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x > 0, x, SLOPE * x)


def _norm_act(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    return _leaky(_instance_norm(x, norm))


def _randomise(module: nn.Module) -> None:
    """Non-trivial weights everywhere (norm affines away from 1/0) so that no term can hide."""
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn_like(p) * 0.5)


@pytest.mark.parametrize("conv", [nn.Conv2d, nn.Conv3d])
def test_preactivation_block_matches_hand_written_formula(conv):
    torch.manual_seed(0)
    ops = LayerOps(conv)
    block = PreActivationResidualBlock(ops, 3, (3,) * ops.dims)
    _randomise(block)
    x = torch.randn((2, 3) + (6,) * ops.dims)
    conv_fn = F.conv3d if ops.dims == 3 else F.conv2d
    h = _norm_act(x, block.norm_act1[0])
    h = conv_fn(h, block.conv1.weight, None, padding=1)
    h = _norm_act(h, block.norm_act2[0])
    h = conv_fn(h, block.conv2.weight, None, padding=1)
    torch.testing.assert_close(block(x), x + h, rtol=1e-4, atol=1e-5)


def test_preactivation_block_is_identity_when_last_conv_is_zero():
    torch.manual_seed(0)
    block = PreActivationResidualBlock(LayerOps(nn.Conv2d), 4, (3, 3))
    with torch.no_grad():
        block.conv2.weight.zero_()
    x = torch.randn(1, 4, 8, 8)
    torch.testing.assert_close(block(x), x, rtol=0, atol=0)


def test_downsampling_residual_block_matches_hand_written_formula():
    """Main path: strided conv; shortcut: max pooling + 1x1 projection + norm; sum then leaky ReLU."""
    torch.manual_seed(0)
    block = ResidualBlock(LayerOps(nn.Conv2d), 3, 5, (3, 3), stride=(2, 1))
    _randomise(block)
    x = torch.randn(2, 3, 8, 6)
    main = F.conv2d(x, block.conv1.weight, None, stride=(2, 1), padding=1)
    main = _norm_act(main, block.norm_act1[0])
    main = _instance_norm(F.conv2d(main, block.conv2.weight, None, padding=1), block.norm2)
    pooled = F.max_pool2d(x, kernel_size=(2, 1), stride=(2, 1))
    projection, projection_norm = block.shortcut[1], block.shortcut[2]
    shortcut = _instance_norm(F.conv2d(pooled, projection.weight), projection_norm)
    expected = _leaky(main + shortcut)
    out = block(x)
    assert out.shape == (2, 5, 4, 6)
    torch.testing.assert_close(out, expected, rtol=1e-4, atol=1e-5)


def test_residual_block_shortcut_is_identity_without_stride_or_width_change():
    torch.manual_seed(0)
    block = ResidualBlock(LayerOps(nn.Conv3d), 4, 4, (1, 3, 3))
    assert len(block.shortcut) == 0
    with torch.no_grad():  # silence the main path: norm2's affine maps everything to 0
        block.norm2.weight.zero_()
        block.norm2.bias.zero_()
    x = torch.randn(1, 4, 3, 6, 6)
    torch.testing.assert_close(block(x), _leaky(x), rtol=0, atol=0)


def test_blocks_have_no_bias_that_a_normalisation_would_erase():
    """A bias in front of instance norm is erased by it (zero gradient); the blocks leave it out."""
    block = ResidualBlock(LayerOps(nn.Conv2d), 2, 4, (3, 3), stride=2)
    pre = PreActivationResidualBlock(LayerOps(nn.Conv2d), 4, (3, 3))
    convs = [m for b in (block, pre) for m in b.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 5 and all(c.bias is None for c in convs)


@pytest.mark.parametrize(
    "module",
    [
        nn.Conv2d(3, 8, 3),
        nn.Conv3d(3, 8, 3, bias=False),
        nn.ConvTranspose2d(8, 4, 2, 2),
        nn.ConvTranspose3d(8, 4, 2, 2),
    ],
)
def test_he_initialize_equals_nnunets_init_weights_he(module):
    torch.manual_seed(3)
    he_initialize(module)
    ours = {k: v.clone() for k, v in module.state_dict().items()}
    torch.manual_seed(3)
    InitWeights_He(1e-2)(module)
    for key, value in module.state_dict().items():
        torch.testing.assert_close(ours[key], value, rtol=0, atol=0)
    # and the variance is Kaiming's 2 / ((1 + a^2) fan_in) (fan_in of a transposed conv is its dim 1 * kernel)
    weight = module.weight
    fan_in = weight.shape[1] * weight[0, 0].numel()
    assert abs(weight.var().item() / (2 / ((1 + SLOPE**2) * fan_in)) - 1) < 0.35
    if module.bias is not None:
        assert torch.count_nonzero(module.bias) == 0


def test_he_initialize_leaves_norm_layers_alone():
    norm = nn.InstanceNorm2d(4, affine=True)
    with torch.no_grad():
        norm.weight.fill_(2.0)
    he_initialize(norm)
    assert torch.all(norm.weight == 2.0)


def test_layer_ops_defaults_are_nnunets_instance_norm_and_leaky_relu():
    ops = LayerOps(nn.Conv3d)
    norm, act = ops.norm_layer(4), ops.activation()
    assert isinstance(norm, nn.InstanceNorm3d) and norm.affine and norm.eps == 1e-5
    assert isinstance(act, nn.LeakyReLU) and act.negative_slope == 1e-2
    assert isinstance(LayerOps(nn.Conv2d).transposed_conv(4, 2, (2, 1)), nn.ConvTranspose2d)


def test_geometry_helpers():
    assert spatial_dims_of(nn.Conv2d) == 2 and spatial_dims_of(nn.Conv3d) == 3
    assert per_axis(3, 3, "k") == (3, 3, 3) and per_axis([1, 3], 2, "k") == (1, 3)
    assert same_padding((1, 3, 5), dilation=2) == (0, 2, 4)
    assert cumulative_scales([[1, 1], [2, 1], [2, 2]], 3) == [[1.0, 1.0], [0.5, 1.0], [0.25, 0.5]]


def test_geometry_helpers_reject_bad_input_with_a_message():
    with pytest.raises(ValueError, match="Conv2d or torch.nn.Conv3d"):
        spatial_dims_of(nn.Conv1d)
    with pytest.raises(ValueError, match="one per spatial axis"):
        per_axis([3, 3], 3, "kernel_sizes[0]")
    with pytest.raises(ValueError, match="odd"):
        same_padding((2, 3))
    with pytest.raises(ValueError, match=r"divisible by the product of the strides \(4, 8\)"):
        check_input(torch.zeros(1, 1, 8, 12), 2, 1, (4, 8), "Net")
    with pytest.raises(ValueError, match=r"expects input of shape \(B, 2, \*, \*\)"):
        check_input(torch.zeros(1, 1, 8, 8), 2, 2, (1, 1), "Net")
