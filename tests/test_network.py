"""The GFN: config, factory, modules, shapes for any input size, checkpoints, pretrained weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.classmap import ClassMap
from core.network import ABLATIONS, BACKBONES, GFNConfig, build_model, load_checkpoint, save_checkpoint
from core.network.backbones import build_backbone, weights_file
from core.network.modules import boundary

torch.set_num_threads(1)


def _model(name: str = "all", **kw):
    torch.manual_seed(0)
    return build_model(GFNConfig.for_ablation(name, pretrained=False, **kw)).eval()


# ---------------------------------------------------------------- config
def test_config_roundtrip_and_frozen():
    cfg = GFNConfig(pretrained=False, num_classes=4, use_bg=False, gf_radius=3)
    d = cfg.to_dict()
    assert d == dataclasses.asdict(cfg) and json.loads(json.dumps(d)) == d
    assert GFNConfig.from_dict(d) == cfg
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.num_classes = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        GFNConfig("mobilenet_v2")  # type: ignore[misc]  # keyword-only


@pytest.mark.parametrize(
    "kw,match",
    [
        (
            dict(backbone="vgg16"),
            r"unknown backbone 'vgg16'; valid backbones: \['mobilenet_v2', 'resnet50', 'resnet101'\]",
        ),
        (dict(output_stride=32), "output_stride must be one of"),
        (dict(gf_radius=0), "gf_radius"),
        (dict(gf_eps=0.0), "gf_eps"),
        (dict(num_classes=1), "num_classes"),
        (dict(num_classes=300), "num_classes"),
    ],
)
def test_config_refuses_bad_values(kw, match):
    with pytest.raises(ValueError, match=match):
        GFNConfig(**kw)


def test_from_dict_refuses_unknown_keys_and_ablation_names():
    with pytest.raises(ValueError, match=r"unknown GFNConfig field\(s\) \['use_crf'\]; known fields: \['backbone'"):
        GFNConfig.from_dict({"use_crf": True})
    with pytest.raises(ValueError, match=r"unknown module set 'crf'; valid: \['baseline'"):
        GFNConfig.for_ablation("crf")
    with pytest.raises(ValueError, match="valid backbones"):
        build_backbone("resnet18", pretrained=False, output_stride=16)
    with pytest.raises(TypeError, match="GFNConfig"):
        build_model({"backbone": "mobilenet_v2"})  # type: ignore[arg-type]
    assert GFNConfig.for_ablation("baseline").modules() == ()
    assert GFNConfig().modules() == ("bg", "hgl", "gf")


# ---------------------------------------------------------------- modules
def test_boundary_is_max_minus_min():
    x = torch.randn(2, 3, 7, 9)
    minpool = -F.max_pool2d(-x, 3, stride=1, padding=1)
    torch.testing.assert_close(boundary(x), F.max_pool2d(x, 3, stride=1, padding=1) - minpool)
    assert (boundary(x) >= 0).all()
    assert boundary(torch.full((1, 1, 5, 5), 2.0)).abs().max() == 0
    step = torch.zeros(1, 1, 6, 6)
    step[..., 3:] = 1.0
    b = boundary(step)[0, 0]
    assert b[:, 2:4].eq(1).all() and b[:, :2].eq(0).all() and b[:, 4:].eq(0).all()


@pytest.mark.parametrize("name", list(ABLATIONS))
def test_ablations_shapes_any_size_and_all_params_used(name):
    model = _model(name, num_classes=3)
    expected = {"bg": model.config.use_bg, "hgl": model.config.use_hgl, "gf": model.config.use_gf}
    for attr, on in expected.items():
        assert (getattr(model, attr) is not None) == on
    with torch.no_grad():
        for h, w in [(33, 47), (64, 64), (50, 21)]:
            assert model(torch.randn(2, 3, h, w)).shape == (2, 3, h, w)
    model.train()
    model(torch.randn(2, 3, 40, 36)).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient (would break DDP): {unused[:5]}"


@pytest.mark.parametrize("os_,high", [(16, 4), (8, 8)])
def test_output_stride(os_, high):
    bb = build_backbone("mobilenet_v2", pretrained=False, output_stride=os_).eval()
    low, hi = bb(torch.randn(1, 3, 64, 64))
    assert low.shape == (1, 24, 16, 16) and hi.shape == (1, 320, high, high)


def test_resnet_backbone_random_init():
    model = build_model(GFNConfig(backbone="resnet50", pretrained=False, output_stride=16)).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 35, 41)).shape == (1, 2, 35, 41)
    assert set(BACKBONES) == {"mobilenet_v2", "resnet50", "resnet101"}


def test_guided_filter_module_is_used_and_settable():
    model = _model("all")
    x = torch.randn(1, 3, 48, 48)
    with torch.no_grad():
        coarse, guide = model.features(x)
        assert guide.shape == (1, 3, 12, 12) and guide.min() >= 0 and guide.max() <= 1
        a = model.refine(coarse, guide, (48, 48))
        torch.testing.assert_close(a, model(x))
        model.gf.r, model.gf.eps = 4, 1.0
        assert not torch.allclose(a, model.refine(coarse, guide, (48, 48)))
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        model(torch.randn(1, 1, 32, 32))


# ---------------------------------------------------------------- checkpoints
def test_checkpoint_roundtrip_identical_predictions(tmp_path: Path):
    model = _model("all", num_classes=3)
    cfg = model.config
    cmap = ClassMap.from_names(["cat", "dog"])
    model.gf.r = 3  # e.g. chosen by grid search: stored in the checkpoint's config
    path = save_checkpoint(tmp_path / "m.pt", model, cfg, cmap, extra={"round": 2, "note": "x"})
    assert [p.name for p in tmp_path.iterdir()] == ["m.pt"]  # atomic: no temporary left behind
    ck = load_checkpoint(path)
    assert ck.classmap == cmap and ck.extra == {"round": 2, "note": "x"}
    assert ck.config == dataclasses.replace(cfg, gf_radius=3)
    assert not ck.model.training
    x = torch.randn(2, 3, 37, 29)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), model(x), rtol=0, atol=0)


def test_checkpoint_errors(tmp_path: Path):
    model = _model("baseline")
    with pytest.raises(ValueError, match="num_classes=2 but the class map has 3"):
        save_checkpoint(tmp_path / "m.pt", model, model.config, ClassMap.from_names(["a", "b"]))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="bad.pt: not a readable"):
        load_checkpoint(bad)
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="not a gfn-autolabel checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


# ---------------------------------------------------------------- pretrained weights (offline)
def test_pretrained_mobilenet_v2_loads_offline():
    path = weights_file("mobilenet_v2")
    assert path == Path(torch.hub.get_dir()) / "checkpoints" / "mobilenet_v2-b0353104.pth"
    assert path.is_file(), f"the set-up should have put the ImageNet weights at {path}"
    model = build_model(GFNConfig())  # pretrained=True by default
    ref = torch.load(path, map_location="cpu", weights_only=True)
    torch.testing.assert_close(model.backbone.low[0][0].weight, ref["features.0.0.weight"])
    torch.testing.assert_close(model.backbone.high[-1].conv[-1].running_var, ref["features.17.conv.3.running_var"])
