"""RDD network of Liu & Fu 2018 (Sec. 1.2): shapes in 2D/3D with deep supervision on and off, additive (not
concatenated) long skips, strided-conv + pooling down-sampling, dense dilated bottleneck, gradient flow."""

import pytest
import torch
from helpers.networks import RDD_FEATURES_2D as FEATURES_2D
from helpers.networks import RDD_FEATURES_3D as FEATURES_3D
from helpers.networks import RDD_KERNELS_2D as KERNELS_2D
from helpers.networks import RDD_STRIDES_2D as STRIDES_2D
from helpers.networks import rdd_net
from torch import nn

from nnunet_lossplug.networks.dense_dilated import DenseDilatedBlock
from nnunet_lossplug.networks.rdd_net import RDDNet

torch.set_num_threads(1)

@pytest.mark.parametrize("dims", [2, 3])
def test_long_skips_are_added_elementwise(dims):
    """Input of decoder stage s == ConvT(d_{s+1}) + e_s (captured with hooks), and no decoder conv sees 2C."""
    net = rdd_net(dims)
    encoder_out, up_out, stage_in = {}, {}, {}
    for s, stage in enumerate(net.encoder.stages):
        stage.register_forward_hook(lambda m, a, out, s=s: encoder_out.__setitem__(s, out.detach().clone()))
    for s, up in enumerate(net.decoder.upsamplers):
        up.register_forward_hook(lambda m, a, out, s=s: up_out.__setitem__(s, out.detach().clone()))
    for s, stage in enumerate(net.decoder.stages):
        stage.register_forward_pre_hook(lambda m, a, s=s: stage_in.__setitem__(s, a[0].detach().clone()))
    with torch.no_grad():
        net(torch.randn((1, 1, 32, 32) if dims == 2 else (1, 1, 8, 16, 16)))
    assert sorted(stage_in) == list(range(len(net.decoder.stages)))
    for s, value in stage_in.items():
        torch.testing.assert_close(value, up_out[s] + encoder_out[s], rtol=0, atol=0)
    for s, stage in enumerate(net.decoder.stages):
        convs = [m for m in stage.modules() if isinstance(m, nn.Conv2d | nn.Conv3d)]
        assert all(c.in_channels == net.decoder.heads[s].in_channels for c in convs)


def test_encoder_downsamples_with_strided_convolutions_and_pooling():
    net = rdd_net(2)
    for s, stage in enumerate(net.encoder.stages):
        first = stage[0]
        assert first.conv1.stride == tuple(STRIDES_2D[s])
        pools = [m for m in first.shortcut if isinstance(m, nn.MaxPool2d)]
        assert len(pools) == (1 if s else 0)
    assert all(isinstance(up, nn.ConvTranspose2d) for up in net.decoder.upsamplers)


def test_bottleneck_is_a_dense_dilated_block_with_rates_1_2_3():
    net = rdd_net(3)
    assert isinstance(net.bottleneck, DenseDilatedBlock)
    assert [layer[0].dilation for layer in net.bottleneck.dilated_layers] == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    assert net.bottleneck.fusion[0].out_channels == FEATURES_3D[-1]
    custom = rdd_net(2, dilation_rates=(1, 3), growth_channels=5)
    assert [layer[0].dilation for layer in custom.bottleneck.dilated_layers] == [(1, 1), (3, 3)]
    assert [layer[0].out_channels for layer in custom.bottleneck.dilated_layers] == [5, 5]


def test_gradcheck_float64_through_the_whole_network():
    torch.manual_seed(0)
    net = RDDNet(
        1, 2, nn.Conv2d, [[3, 3]] * 3, [[1, 1], [2, 2], [2, 2]], (2, 3, 4), growth_channels=2
    ).double()
    x = torch.randn(1, 1, 12, 8, dtype=torch.float64, requires_grad=True)  # bottleneck 3x2
    assert torch.autograd.gradcheck(lambda t: tuple(net(t)), (x,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_several_blocks_per_stage():
    net = rdd_net(2, n_blocks_per_stage=(1, 2, 2, 1, 1), n_blocks_per_stage_decoder=2)
    assert [len(stage) for stage in net.encoder.stages] == [1, 2, 2, 1, 1]
    assert [len(stage) for stage in net.decoder.stages] == [2, 2, 2, 2]
    with torch.no_grad():
        assert tuple(net(torch.randn(1, 1, 32, 16))[0].shape) == (1, 3, 32, 16)


def test_bad_configuration_is_rejected_with_a_message():
    with pytest.raises(ValueError, match="one entry per stage"):
        RDDNet(1, 2, nn.Conv2d, KERNELS_2D, STRIDES_2D, FEATURES_2D[:3])
    with pytest.raises(ValueError, match="strides\\[0\\] must be all ones"):
        RDDNet(1, 2, nn.Conv2d, KERNELS_2D, [[2, 2]] + STRIDES_2D[1:], FEATURES_2D)
    with pytest.raises(ValueError, match="divisible by the product of the strides \\(16, 16\\)"):
        rdd_net(2)(torch.randn(1, 1, 40, 48))
