"""Dense dilated bottleneck of the RDD network (Liu & Fu 2018, Sec. 1.2): rates, dense connectivity, image-level
feature, the block's formula recomputed by hand, and finite differences."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from nnunet_lossplug.networks.blocks import LayerOps
from nnunet_lossplug.networks.dense_dilated import DEFAULT_DILATION_RATES, DenseDilatedBlock

torch.set_num_threads(1)


def _block(dims: int, channels: int = 8, **kwargs) -> DenseDilatedBlock:
    torch.manual_seed(0)
    block = DenseDilatedBlock(LayerOps(nn.Conv3d if dims == 3 else nn.Conv2d), channels, 3, **kwargs)
    with torch.no_grad():  # norm affines away from (1, 0) so that every parameter matters in the checks
        for p in block.parameters():
            p.copy_(torch.randn_like(p) * 0.5)
    return block


def test_default_rates_are_1_2_3_and_increase():
    assert DEFAULT_DILATION_RATES == (1, 2, 3)
    block = _block(2)
    dilations = [layer[0].dilation for layer in block.dilated_layers]
    paddings = [layer[0].padding for layer in block.dilated_layers]
    assert dilations == [(1, 1), (2, 2), (3, 3)]
    assert paddings == [(1, 1), (2, 2), (3, 3)]  # 'same' padding r (k - 1) / 2


@pytest.mark.parametrize("dims", [2, 3])
def test_each_dilated_convolution_reads_exactly_the_taps_at_its_rate(dims):
    """Impulse response of dilated layer i: non-zero exactly at centre + r_i * {-1, 0, 1}^dims."""
    block = _block(dims, channels=4)
    size, centre = 9, 4
    for layer, rate in zip(block.dilated_layers, block.dilation_rates, strict=True):
        conv = layer[0]
        impulse = torch.zeros((1, conv.in_channels) + (size,) * dims)
        impulse[(0, 0) + (centre,) * dims] = 1.0
        with torch.no_grad():
            response = conv(impulse).abs().sum(dim=(0, 1))
        expected = torch.zeros((size,) * dims, dtype=torch.bool)
        for offset in itertools.product((-rate, 0, rate), repeat=dims):
            expected[tuple(centre + o for o in offset)] = True
        assert torch.equal(response > 0, expected), f"rate {rate}"


def test_each_layer_receives_the_concatenation_of_all_earlier_ones():
    block = _block(2, channels=8, growth_channels=3)
    inputs, outputs = [], []

    def record(module, args, output):
        inputs.append(args[0])
        outputs.append(output)

    for layer in block.dilated_layers:
        layer.register_forward_hook(record)
    x = torch.randn(2, 8, 5, 4)
    block(x)
    assert [t.shape[1] for t in inputs] == [8, 11, 14]
    for i, layer_input in enumerate(inputs):
        torch.testing.assert_close(layer_input, torch.cat([x, *outputs[:i]], dim=1), rtol=0, atol=0)


def test_block_output_matches_hand_written_formula():
    """out = act(norm(W_f z) + W_p GAP(z) + b_p), z = cat[x, y_1, y_2, y_3], y_i = act(norm(conv_r_i(.)))."""
    block = _block(2, channels=6, growth_channels=2)
    x = torch.randn(2, 6, 5, 7)

    def instance_norm_act(h, norm, act=True):
        mean = h.mean(dim=(2, 3), keepdim=True)
        var = h.var(dim=(2, 3), keepdim=True, unbiased=False)
        h = (h - mean) / torch.sqrt(var + norm.eps) * norm.weight.view(1, -1, 1, 1) + norm.bias.view(
            1, -1, 1, 1
        )
        return torch.where(h > 0, h, 0.01 * h) if act else h

    features = [x]
    for layer, rate in zip(block.dilated_layers, (1, 2, 3), strict=True):
        conv, norm = layer[0], layer[1][0]
        h = F.conv2d(torch.cat(features, 1), conv.weight, None, padding=rate, dilation=rate)
        features.append(instance_norm_act(h, norm))
    z = torch.cat(features, 1)
    pool_conv = block.image_pool[1]
    pooled = (pool_conv.weight[:, :, 0, 0] @ z.mean(dim=(2, 3)).T).T + pool_conv.bias  # (B, C)
    fused = instance_norm_act(F.conv2d(z, block.fusion[0].weight), block.fusion[1], act=False)
    expected = fused + pooled[:, :, None, None]
    expected = torch.where(expected > 0, expected, 0.01 * expected)
    torch.testing.assert_close(block(x), expected, rtol=1e-4, atol=1e-5)


def test_image_level_feature_is_not_erased_by_the_normalisation():
    """Changing the pooled branch's bias by c changes the pre-activation output by exactly c (per channel)."""
    block = _block(2, channels=4)
    block.act = nn.Identity()  # look at the pre-activation sum
    x = torch.randn(1, 4, 6, 6)
    with torch.no_grad():
        before = block(x)
        block.image_pool[1].bias += torch.tensor([1.0, -2.0, 0.5, 3.0])
        after = block(x)
    torch.testing.assert_close(
        after - before, torch.tensor([1.0, -2.0, 0.5, 3.0]).view(1, 4, 1, 1).expand_as(x)
    )


def test_gradcheck_float64():
    block = _block(2, channels=3, growth_channels=2).double()
    x = torch.randn(1, 3, 4, 5, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(block, (x,), eps=1e-6, atol=1e-5)


def test_rejects_rates_that_do_not_increase():
    with pytest.raises(ValueError, match="strictly increasing"):
        DenseDilatedBlock(LayerOps(nn.Conv2d), 4, 3, dilation_rates=(2, 2, 3))
    with pytest.raises(ValueError, match="received \\(\\)"):
        DenseDilatedBlock(LayerOps(nn.Conv2d), 4, 3, dilation_rates=())
