"""Encoder families: shapes, the reference's MLP head, wrapping, clear errors."""

import pytest
import torch
from torch import nn

from rmqm.models.backbones import (
    ARCHITECTURES,
    LeNet,
    MLPHead,
    ResNet18CIFAR,
    TinyCNN,
    build_backbone,
)
from rmqm.models.encoder import Encoder, check_embeddings, encoder_dtype, evaluating_on


@pytest.mark.parametrize("arch,channels,size", [("tiny", 1, 28), ("lenet", 1, 28), ("lenet", 1, 32), ("resnet18", 3, 32)])
def test_backbones_map_images_to_embeddings(arch, channels, size):
    torch.manual_seed(0)
    net = build_backbone(arch, channels, 16).eval()
    z = Encoder(net, (0.5,) * channels, (0.25,) * channels)(torch.rand(2, channels, size, size))
    assert z.shape == (2, 16) and torch.isfinite(z).all()


def test_resnet_has_the_reference_projection_head():
    net = ResNet18CIFAR(3, dim=64)
    linears = [m for m in net.head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(512, 1024), (1024, 1024), (1024, 64)]
    assert isinstance(net.features.conv1, nn.Conv2d) and net.features.conv1.stride == (1, 1)
    assert isinstance(net.features.maxpool, nn.Identity)


def test_mlp_head_ends_linear_without_activation():
    head = MLPHead(10, (20,), 3)
    assert isinstance(head.net[-1], nn.Linear)
    with pytest.raises(ValueError, match="MLP sizes must be positive"):
        MLPHead(10, (0,), 3)


def test_lenet_and_tiny_dims():
    assert LeNet(1, 7).eval()(torch.rand(3, 1, 28, 28)).shape == (3, 7)
    assert TinyCNN(1, 5, width=4).eval()(torch.rand(3, 1, 28, 28)).shape == (3, 5)


def test_unknown_architecture_and_bad_sizes_raise():
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        build_backbone("vgg", 1, 8)
    assert set(ARCHITECTURES) == {"tiny", "lenet", "resnet18"}
    with pytest.raises(ValueError, match="positive"):
        LeNet(1, 0)


def test_any_module_wraps_in_one_line():
    torch.manual_seed(0)
    enc = Encoder(nn.Sequential(nn.Conv2d(1, 2, 3), nn.AdaptiveAvgPool2d(2)), mean=(0.5,), std=(0.5,))
    x = torch.rand(4, 1, 8, 8)
    z = enc(x)
    assert z.shape == (4, 8)  # flattened
    torch.testing.assert_close(z, enc.backbone((x - 0.5) / 0.5).flatten(1))


def test_encoder_and_embedding_checks_name_the_problem():
    with pytest.raises(TypeError, match="torch.nn.Module"):
        Encoder(lambda x: x)
    enc = Encoder(nn.Flatten(), (0.5,), (0.5,))
    with pytest.raises(ValueError, match=r"expected images \(B, 1, H, W\)"):
        enc(torch.rand(2, 3, 4, 4))
    with pytest.raises(ValueError, match="NaN or inf"):
        check_embeddings(torch.tensor([[float("nan")]]), 1)
    with pytest.raises(ValueError, match=r"shape \(batch, dim\)"):
        check_embeddings(torch.zeros(2, 3, 4), 2)


def test_evaluating_on_lends_the_module_and_gives_it_back_even_after_an_error():
    moves = []

    class Recording(nn.Sequential):
        def to(self, *args, **kwargs):
            moves.append(args)
            return super().to(*args, **kwargs)

    module = Recording(nn.Linear(2, 2), nn.Dropout(0.5)).train()
    module[0].eval()  # mixed modes are given back as they were, submodule by submodule
    weight = module[0].weight
    with pytest.raises(RuntimeError, match="inside"):
        with evaluating_on(module, "cpu") as lent:
            assert lent is module and not any(m.training for m in module.modules())
            raise RuntimeError("inside")
    assert [m.training for m in module.modules()] == [True, False, True]
    assert moves == [("cpu",), (torch.device("cpu"),)]  # out to the device, back home
    assert module[0].weight is weight  # moved in place: the caller's references stay valid


def test_encoder_dtype_is_the_first_floating_parameters():
    assert encoder_dtype(nn.Linear(2, 2).double()) == torch.float64
    assert encoder_dtype(nn.Flatten()) == torch.float32 and encoder_dtype(lambda x: x) == torch.float32
    assert encoder_dtype(nn.Embedding(3, 2).half()) == torch.float16


def test_lenet_is_the_reference_mnist_encoder():
    net = LeNet(1, dim=10)
    convs = [m for m in net.features if isinstance(m, nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs] == [
        (1, 6, (5, 5), (0, 0)), (6, 16, (5, 5), (0, 0))]
    linears = [m for m in net.head.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(256, 512), (512, 512), (512, 512), (512, 10)]
    assert not any(isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)) for m in net.modules())
    assert sum(isinstance(m, nn.ReLU) for m in net.modules()) == 2 + 3
    # 28 -conv5-> 24 -pool-> 12 -conv5-> 8 -pool-> 4: the flatten is 16 * 4 * 4 = 256 features
    assert net.features(torch.rand(2, 1, 28, 28)).shape == (2, 256)
    conv = (1 * 6 * 25 + 6) + (6 * 16 * 25 + 16)
    mlp = (256 * 512 + 512) + 2 * (512 * 512 + 512) + (512 * 10 + 10)
    assert sum(p.numel() for p in net.parameters()) == conv + mlp
    assert build_backbone("lenet", 1, 10).head.net[0].in_features == 256


def test_mlp_head_without_batch_norm():
    head = MLPHead(10, (20, 30), 3, batch_norm=False)
    assert [type(m) for m in head.net] == [nn.Linear, nn.ReLU, nn.Linear, nn.ReLU, nn.Linear]
