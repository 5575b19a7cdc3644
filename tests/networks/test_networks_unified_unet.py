"""Unified U-Net of Nguyen et al. 2019 (Sec. III-A, IV-A): shapes in 2D/3D with deep supervision on and off, the
final output as the documented sum of upsampled per-level maps, gradient flow, paper defaults."""

import pytest
import torch
from helpers.networks import UNET_KERNELS_2D as KERNELS_2D
from helpers.networks import UNET_STRIDES_2D as STRIDES_2D
from helpers.networks import UNET_STRIDES_3D as STRIDES_3D
from helpers.networks import unified_unet
from torch import nn

from nnunet_lossplug.networks.unified_unet import UnifiedUNet

torch.set_num_threads(1)

def test_paper_defaults_16_features_doubling_instance_norm_leaky_relu():
    net = UnifiedUNet(1, 2, nn.Conv2d, KERNELS_2D, STRIDES_2D)
    entries = [level[0] for level in net.encoder.levels]
    assert [conv.out_channels for conv in entries] == [16, 32, 64, 128]
    assert [conv.stride for conv in entries] == [(1, 1), (2, 2), (2, 2), (2, 2)]  # strided-conv down-sampler
    assert len(net.decoder.heads) == 3
    assert all(
        isinstance(up, nn.ConvTranspose2d) for up in net.decoder.upsamplers
    )  # transposed-conv up-sampler
    kinds = {type(m) for m in net.modules()}
    assert nn.InstanceNorm2d in kinds and nn.LeakyReLU in kinds
    assert not kinds & {nn.BatchNorm2d, nn.ReLU}


def _head_maps(net: UnifiedUNet, x: torch.Tensor) -> tuple[list[torch.Tensor], object]:
    maps = {}
    for h, head in enumerate(net.decoder.heads):
        head.register_forward_hook(
            lambda m, args, out, h=h: maps.__setitem__(h, out.detach().clone()) or None
        )
    with torch.no_grad():
        result = net(x)
    return [maps[h] for h in range(len(net.decoder.heads))], result


def _upsample_nearest(t: torch.Tensor, factors) -> torch.Tensor:
    for axis, f in enumerate(factors):
        t = t.repeat_interleave(int(f), dim=2 + axis)
    return t


@pytest.mark.parametrize("dims", [2, 3])
def test_final_output_is_sum_of_upsampled_level_maps(dims):
    """F_0 = S_0 + up(S_1) + up(up(S_2)); deep-supervision outputs 1 and 2 are the raw maps S_1, S_2."""
    net = unified_unet(dims)
    shape = (2, 1, 64, 48) if dims == 2 else (1, 1, 16, 32, 32)
    strides = STRIDES_3D if dims == 3 else STRIDES_2D
    (s0, s1, s2), outputs = _head_maps(net, torch.randn(shape))
    expected = s0 + _upsample_nearest(s1 + _upsample_nearest(s2, strides[2]), strides[1])
    torch.testing.assert_close(outputs[0], expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outputs[1], s1, rtol=0, atol=0)
    torch.testing.assert_close(outputs[2], s2, rtol=0, atol=0)
    assert not torch.allclose(outputs[0], s0)  # the coarse maps really contribute


def test_gradcheck_float64_through_the_whole_network():
    net = unified_unet(2, features=(2, 3, 4, 5), classes=2).double()
    x = torch.randn(1, 1, 16, 8, dtype=torch.float64, requires_grad=True)  # bottleneck 2x1

    def summed(inp):
        return tuple(net(inp))

    assert torch.autograd.gradcheck(summed, (x,), eps=1e-6, atol=1e-5, fast_mode=True)


def test_skips_are_concatenated_as_in_unet():
    net = unified_unet(2)
    assert [m.in_channels for m in net.decoder.merges] == [8, 16, 24]  # 2 * features[l]


def test_fewer_levels_give_fewer_heads():
    net = UnifiedUNet(1, 2, nn.Conv2d, KERNELS_2D[:3], STRIDES_2D[:3], features_per_level=(4, 8, 16))
    with torch.no_grad():
        outputs = net(torch.randn(1, 1, 16, 16))
    assert [tuple(o.shape[2:]) for o in outputs] == [(16, 16), (8, 8)]
    assert net.deep_supervision_scales() == [[1.0, 1.0], [0.5, 0.5]]


def test_state_dict_is_the_same_with_and_without_deep_supervision():
    """nnU-Net's predictor builds the network with deep supervision off and loads the training weights."""
    trained = unified_unet(2, deep_supervision=True)
    inference = UnifiedUNet(
        1, 3, nn.Conv2d, KERNELS_2D, STRIDES_2D, features_per_level=(4, 8, 12, 16), deep_supervision=False
    )
    inference.load_state_dict(trained.state_dict(), strict=True)
    x = torch.randn(1, 1, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(inference(x), trained(x)[0], rtol=0, atol=0)


def test_bad_input_is_rejected_with_a_message():
    net = unified_unet(2)
    with pytest.raises(ValueError, match="divisible by the product of the strides \\(8, 8\\)"):
        net(torch.randn(1, 1, 60, 48))
    with pytest.raises(ValueError, match="expects input of shape \\(B, 1, \\*, \\*\\)"):
        net(torch.randn(1, 1, 8, 8, 8))
    with pytest.raises(ValueError, match="strides\\[0\\] must be all ones"):
        UnifiedUNet(1, 2, nn.Conv2d, KERNELS_2D, [[2, 2]] + STRIDES_2D[1:])
    with pytest.raises(ValueError, match="features_per_level needs 4 entries"):
        UnifiedUNet(1, 2, nn.Conv2d, KERNELS_2D, STRIDES_2D, features_per_level=(4, 8))
