"""Builders with nnU-Net's network-hook signature and the deep-supervision scales helper, checked against
nnU-Net's own code: plans in nnU-Net's string format, ``InitWeights_He``, ``set_deep_supervision_enabled``
(plain and ``torch.compile``-wrapped), ``_get_deep_supervision_scales``, ``DownsampleSegForDSTransform`` +
``DeepSupervisionWrapper``, and the predictor's sliding-window inference."""

from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from batchgeneratorsv2.transforms.utils.deep_supervision_downsampling import DownsampleSegForDSTransform
from dynamic_network_architectures.architectures.unet import PlainConvUNet
from dynamic_network_architectures.initialization.weight_init import InitWeights_He
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import nn

from nnunet_lossplug.networks import (
    RDDNet,
    UnifiedUNet,
    build_rdd_net,
    build_unified_unet,
    deep_supervision_scales,
    unified_unet_levels,
)

torch.set_num_threads(1)
REQ_IMPORT = ["conv_op", "norm_op", "dropout_op", "nonlin"]
BUILDERS = [build_unified_unet, build_rdd_net]


def plan_2d(n_stages: int = 5, features=(8, 16, 32, 32, 32, 32)) -> dict:
    """A configuration's arch_kwargs exactly as nnU-Net's default planner writes them (2d)."""
    return {
        "n_stages": n_stages,
        "features_per_stage": list(features[:n_stages]),
        "conv_op": "torch.nn.modules.conv.Conv2d",
        "kernel_sizes": [[3, 3]] * n_stages,
        "strides": [[1, 1]] + [[2, 2]] * (n_stages - 1),
        "n_conv_per_stage": [2] * n_stages,
        "n_conv_per_stage_decoder": [2] * (n_stages - 1),
        "conv_bias": True,
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm2d",
        "norm_op_kwargs": {"eps": 1e-05, "affine": True},
        "dropout_op": None,
        "dropout_op_kwargs": None,
        "nonlin": "torch.nn.LeakyReLU",
        "nonlin_kwargs": {"inplace": True},
    }


def plan_3d() -> dict:
    """An anisotropic 3d_fullres-like plan: no pooling along z at first, 1x3x3 kernels there."""
    return {
        **plan_2d(4),
        "conv_op": "torch.nn.modules.conv.Conv3d",
        "kernel_sizes": [[1, 3, 3], [1, 3, 3], [3, 3, 3], [3, 3, 3]],
        "strides": [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2]],
        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
    }


def nnunet_scales(strides) -> list[list[float]]:
    """nnU-Net's own _get_deep_supervision_scales for these pooling factors."""
    fake_trainer = SimpleNamespace(
        enable_deep_supervision=True, configuration_manager=SimpleNamespace(pool_op_kernel_sizes=strides)
    )
    return [[float(v) for v in s] for s in nnUNetTrainer._get_deep_supervision_scales(fake_trainer)]


@pytest.mark.parametrize(
    ("builder", "plan", "shape", "n_outputs"),
    [
        (build_unified_unet, plan_2d(), (1, 1, 64, 48), 3),
        (build_unified_unet, plan_3d(), (1, 1, 16, 32, 32), 3),
        (build_rdd_net, plan_2d(), (1, 1, 64, 48), 4),
        (build_rdd_net, plan_3d(), (1, 1, 16, 32, 32), 3),
    ],
)
def test_builders_read_nnunet_plans_and_honour_the_deep_supervision_switch(builder, plan, shape, n_outputs):
    torch.manual_seed(0)
    network = builder(
        "dynamic_network_architectures.architectures.unet.PlainConvUNet", plan, REQ_IMPORT, 1, 3
    )
    conv = nn.Conv3d if len(shape) == 5 else nn.Conv2d
    assert all(type(m) is conv for m in network.modules() if isinstance(m, nn.Conv2d | nn.Conv3d))
    x = torch.randn(shape)
    with torch.no_grad():
        outputs = network(x)
        assert len(outputs) == n_outputs
        scales = deep_supervision_scales(network)
        for output, scale in zip(outputs, scales, strict=True):
            assert list(output.shape[2:]) == [round(n * s) for n, s in zip(shape[2:], scale, strict=True)]
        # nnU-Net's switch, as nnUNetTrainer.set_deep_supervision_enabled does it
        nnUNetTrainer.set_deep_supervision_enabled(SimpleNamespace(is_ddp=False, network=network), False)
        single = network(x)
    assert isinstance(single, torch.Tensor) and single.shape == (1, 3, *shape[2:])
    torch.testing.assert_close(single, outputs[0], rtol=0, atol=0)


def test_unified_unet_uses_min_4_stages_and_the_papers_widths():
    network = build_unified_unet(None, plan_2d(6), REQ_IMPORT, 1, 2)
    assert len(network.encoder.levels) == 4
    assert [level[0].out_channels for level in network.encoder.levels] == [16, 32, 64, 128]
    small = build_unified_unet(None, plan_2d(3), REQ_IMPORT, 1, 2)
    assert len(small.encoder.levels) == 3 and len(small.decoder.heads) == 2
    assert unified_unet_levels(6) == 4 and unified_unet_levels(3) == 3 and unified_unet_levels(6, 5) == 5
    with pytest.raises(ValueError, match="2 <= n_levels <= n_stages = 3"):
        build_unified_unet(None, plan_2d(3), REQ_IMPORT, 1, 2, n_levels=4)


def test_unified_unet_keeps_instance_norm_and_leaky_relu_whatever_the_plan_says():
    plan = {**plan_2d(4), "norm_op": "torch.nn.BatchNorm2d", "nonlin": "torch.nn.ReLU"}
    unified = build_unified_unet(None, plan, REQ_IMPORT, 1, 2)
    rdd = build_rdd_net(None, plan, REQ_IMPORT, 1, 2)
    unified_kinds = {type(m) for m in unified.modules()}
    rdd_kinds = {type(m) for m in rdd.modules()}
    assert {nn.InstanceNorm2d, nn.LeakyReLU} <= unified_kinds and not {
        nn.BatchNorm2d,
        nn.ReLU,
    } & unified_kinds
    assert {nn.BatchNorm2d, nn.ReLU} <= rdd_kinds and not {nn.InstanceNorm2d, nn.LeakyReLU} & rdd_kinds
    leaky = {**plan_2d(4), "nonlin_kwargs": {"negative_slope": 0.2, "inplace": False}}
    slopes = {
        m.negative_slope
        for m in build_unified_unet(None, leaky, REQ_IMPORT, 1, 2).modules()
        if isinstance(m, nn.LeakyReLU)
    }
    assert slopes == {0.2}


def test_rdd_net_uses_residual_encoder_block_counts_when_the_plan_has_them():
    plan = {**plan_2d(4), "n_blocks_per_stage": [1, 3, 2, 2]}
    network = build_rdd_net(None, plan, REQ_IMPORT, 1, 2)
    assert [len(stage) for stage in network.encoder.stages] == [1, 3, 2, 2]
    assert [stage[0].conv1.out_channels for stage in network.encoder.stages] == [8, 16, 32, 32]


@pytest.mark.parametrize("builder", BUILDERS)
def test_builders_apply_he_initialisation_like_nnunet(builder):
    torch.manual_seed(7)
    built = builder(None, plan_2d(4), REQ_IMPORT, 1, 3)
    torch.manual_seed(7)
    cls = UnifiedUNet if builder is build_unified_unet else RDDNet
    kwargs = (
        {"features_per_level": [16, 32, 64, 128]}
        if cls is UnifiedUNet
        else {"features_per_stage": [8, 16, 32, 32]}
    )
    reference = cls(1, 3, nn.Conv2d, [[3, 3]] * 4, [[1, 1]] + [[2, 2]] * 3, **kwargs)
    reference.apply(InitWeights_He(1e-2))
    built_state, reference_state = built.state_dict(), reference.state_dict()
    assert built_state.keys() == reference_state.keys()
    for key, value in reference_state.items():
        torch.testing.assert_close(built_state[key], value, rtol=0, atol=0, msg=key)


@pytest.mark.parametrize("builder", BUILDERS)
def test_switch_reaches_a_torch_compiled_network(builder):
    network = builder(None, plan_2d(4), REQ_IMPORT, 1, 2)
    compiled = torch.compile(network)  # lazy: nothing is compiled until the first call
    assert hasattr(compiled, "_orig_mod")
    nnUNetTrainer.set_deep_supervision_enabled(SimpleNamespace(is_ddp=False, network=compiled), False)
    assert network.decoder.deep_supervision is False
    assert deep_supervision_scales(compiled) == deep_supervision_scales(network)
    assert deep_supervision_scales(nn.DataParallel(network)) == deep_supervision_scales(network)


@pytest.mark.parametrize("plan", [plan_2d(6), plan_3d()])
def test_scales_match_nnunets_own_list(plan):
    strides = plan["strides"]
    rdd = build_rdd_net(None, plan, REQ_IMPORT, 1, 2)
    unified = build_unified_unet(None, plan, REQ_IMPORT, 1, 2)
    assert deep_supervision_scales(rdd) == nnunet_scales(strides)  # n_stages - 1 entries, identical
    assert deep_supervision_scales(unified) == nnunet_scales(strides)[:3]
    assert deep_supervision_scales(plan, "rdd_net") == deep_supervision_scales(rdd)
    assert deep_supervision_scales(plan, "unified_unet") == deep_supervision_scales(unified)


@pytest.mark.parametrize("builder", BUILDERS)
def test_nnunet_target_downsampling_and_loss_wrapper_fit_the_outputs(builder):
    """DownsampleSegForDSTransform(our scales) gives one target per output with matching shapes."""
    torch.manual_seed(0)
    network = builder(None, plan_3d(), REQ_IMPORT, 1, 3)
    scales = deep_supervision_scales(network)
    segmentation = torch.randint(0, 3, (1, 16, 32, 32), dtype=torch.int16)
    targets = DownsampleSegForDSTransform(ds_scales=scales)(segmentation=segmentation)["segmentation"]
    outputs = network(torch.randn(1, 1, 16, 32, 32))
    assert [t.shape[1:] for t in targets] == [o.shape[2:] for o in outputs]

    def cross_entropy(logits, target):
        return F.cross_entropy(logits, target.long())

    weights = [1.0, 0.1, 0.01][: len(outputs)]
    loss = DeepSupervisionWrapper(cross_entropy, weights)(outputs, [t for t in targets])
    loss.backward()
    assert torch.isfinite(loss)


@pytest.mark.parametrize("builder", BUILDERS)
def test_nnunet_predictor_consumes_the_single_output(builder):
    """nnU-Net's sliding-window inference on one tile (no mirroring, flat weights) gives the logits (fp16)."""
    from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor

    torch.manual_seed(0)
    trained = builder(None, plan_2d(4), REQ_IMPORT, 1, 3, enable_deep_supervision=True)
    network = builder(None, plan_2d(4), REQ_IMPORT, 1, 3, enable_deep_supervision=False)
    network.load_state_dict(trained.state_dict())  # what the predictor does with a checkpoint
    predictor = nnUNetPredictor(
        use_gaussian=False, use_mirroring=False, device=torch.device("cpu"), allow_tqdm=False
    )
    predictor.network = network
    predictor.configuration_manager = SimpleNamespace(patch_size=(32, 32))
    predictor.label_manager = SimpleNamespace(num_segmentation_heads=3)
    predictor.allowed_mirroring_axes = None
    image = torch.randn(1, 1, 32, 32)  # (c, z, x, y): one slice of one 2D patch
    logits = predictor.predict_sliding_window_return_logits(image)
    with torch.no_grad():
        expected = trained.eval()(image[:, 0][None])[0][0]
    assert logits.shape == (3, 1, 32, 32)
    torch.testing.assert_close(logits[:, 0].float(), expected, rtol=1e-2, atol=1e-2)


def test_plan_errors_name_the_problem():
    with pytest.raises(ImportError, match="arch_init_kwargs\\['conv_op'\\] = 'torch.nn.Conv9d'"):
        build_rdd_net(None, {**plan_2d(), "conv_op": "torch.nn.Conv9d"}, REQ_IMPORT, 1, 2)
    with pytest.raises(KeyError, match="lacks \\['strides'\\]"):
        build_unified_unet(None, {k: v for k, v in plan_2d().items() if k != "strides"}, REQ_IMPORT, 1, 2)
    with pytest.raises(ValueError, match="Conv2d or torch.nn.Conv3d"):
        build_unified_unet(None, {**plan_2d(), "conv_op": "torch.nn.Conv1d"}, REQ_IMPORT, 1, 2)
    with pytest.raises(ValueError, match="kernel_sizes must have n_stages = 5 entries"):
        build_rdd_net(None, {**plan_2d(), "kernel_sizes": [[3, 3]] * 4}, REQ_IMPORT, 1, 2)
    with pytest.raises(TypeError, match="received PlainConvUNet"):
        deep_supervision_scales(PlainConvUNet(1, 2, 8, nn.Conv2d, 3, [1, 2], 1, 2, 1))
    with pytest.raises(ValueError, match="architecture must be one of"):
        deep_supervision_scales(plan_2d(), "plain_unet")
