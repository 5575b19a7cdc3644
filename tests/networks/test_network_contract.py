"""What nnU-Net needs from any network the plugin builds, checked on both of the papers' networks (the RDD network
of Liu & Fu 2018 and the unified U-Net of Nguyen et al. 2019): one output per deep-supervision level, high to low
resolution, matching ``deep_supervision_scales()``; the full-resolution output alone when deep supervision is off;
a gradient for every parameter."""

import pytest
import torch
from helpers.networks import rdd_net, unified_unet

torch.set_num_threads(1)

# network, dims, input shape, the output shapes with deep supervision (high -> low resolution)
CASES = [
    ("rdd", rdd_net, 2, (1, 1, 64, 48), [(64, 48), (32, 24), (16, 12), (8, 6)]),
    ("rdd", rdd_net, 3, (1, 1, 16, 32, 32), [(16, 32, 32), (16, 16, 16), (8, 8, 8)]),
    ("unified", unified_unet, 2, (1, 1, 64, 48), [(64, 48), (32, 24), (16, 12)]),
    ("unified", unified_unet, 3, (1, 1, 16, 32, 32), [(16, 32, 32), (16, 16, 16), (8, 8, 8)]),
]
IDS = [f"{name}-{dims}d" for name, _, dims, _, _ in CASES]


@pytest.mark.parametrize(("name", "build", "dims", "shape", "expected"), CASES, ids=IDS)
def test_output_shapes_with_deep_supervision_on_and_off(name, build, dims, shape, expected):
    net = build(dims)
    x = torch.randn(shape)
    with torch.no_grad():
        outputs = net(x)
        assert isinstance(outputs, list)
        assert [tuple(o.shape) for o in outputs] == [(1, 3, *s) for s in expected]
        scales = net.deep_supervision_scales()
        assert [[round(n * f) for n, f in zip(shape[2:], s, strict=True)] for s in scales] == [
            list(s) for s in expected
        ]
        net.decoder.deep_supervision = False
        single = net(x)
    assert isinstance(single, torch.Tensor) and tuple(single.shape) == (1, 3, *expected[0])
    torch.testing.assert_close(single, outputs[0], rtol=0, atol=0)


@pytest.mark.parametrize(("name", "build", "dims", "shape", "expected"), CASES, ids=IDS)
def test_every_parameter_gets_a_gradient(name, build, dims, shape, expected):
    """In float64, so that a mathematically dead parameter (a bias erased by a normalisation, a constant
    feature erased by instance norm) shows up: its gradient is rounding noise (~1e-16), not >= 1e-8."""
    net = build(dims).double()
    x = torch.randn(dtype=torch.float64, size=(2, *shape[1:]) if dims == 2 else shape)
    outputs = net(x)
    torch.manual_seed(1)
    loss = sum((o * torch.randn_like(o)).sum() for o in outputs)
    loss.backward()
    missing = [name for name, p in net.named_parameters() if p.grad is None or p.grad.abs().max() < 1e-8]
    assert missing == []
