"""The GFN: config, factory, modules, shapes for any input size, checkpoints, pretrained weights."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from core.classmap import ClassMap
from core.filters import FastGuidedFilter
from core.network import ABLATIONS, BACKBONES, GFNConfig, build_model, load_checkpoint, save_checkpoint
from core.network.backbones import build_backbone, weights_file
from core.network.config import LEGACY_FIELDS
from core.network.modules import ImageGuide, boundary

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
        (dict(gf_mode="slow"), r"gf_mode must be one of \['stride4', 'fast'\], got 'slow'"),
        (dict(decoder_channels=0), "decoder_channels must be a positive int or None"),
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


@pytest.mark.parametrize("name", ["gf", "all"])
def test_fast_guided_filter_mode(name):
    model = _model(name, gf_mode="fast", num_classes=3)
    assert isinstance(model.guide, ImageGuide) and isinstance(model.gf, FastGuidedFilter)
    assert model.hgl_in_decoder == (name == "all")
    if name == "all":  # HGL joins the decoder next to the up-sampled ASPP and BG features
        assert model.decoder[0][0].in_channels == model.config.aspp_channels + 2 * model.config.low_channels
    x = torch.randn(2, 3, 45, 61)  # not multiples of 4
    with torch.no_grad():
        coarse, guide = model.features(x)
        assert guide.shape == (2, 3, 45, 61) and guide.min() >= 0 and guide.max() <= 1
        out = model.refine(coarse, guide, (45, 61))
        assert out.shape == (2, 3, 45, 61)
        torch.testing.assert_close(out, model(x))
        # the filter is applied at full resolution: not the bilinear up-sampling of the coarse logits
        logits = 3 * torch.randn_like(coarse)
        filtered = model.refine(logits, guide, (45, 61))
        assert float((filtered - F.interpolate(logits, size=(45, 61), mode="bilinear")).abs().max()) > 0.1
        model.gf.r, model.gf.eps = 4, 1.0
        assert float((filtered - model.refine(logits, guide, (45, 61))).abs().max()) > 0.1
    model.train()
    model(torch.randn(2, 3, 40, 36)).sum().backward()
    unused = [n for n, p in model.named_parameters() if p.grad is None]
    assert not unused, f"parameters without gradient: {unused[:5]}"


def test_fast_mode_edges_follow_the_image():
    """A step in the coarse logits refined with a two-colour image: ``q = a.I + b`` with ``a, b``
    smooth, so the output steps sharply where the image steps, where bilinear up-sampling of the
    coarse logits spreads the step over 4 pixels."""
    model = _model("gf", gf_mode="fast")
    guide = torch.zeros(1, 3, 32, 32)
    guide[..., 13:] = 1.0  # an edge between columns 12 and 13, not on the stride-4 grid
    coarse = torch.zeros(1, 2, 8, 8)
    coarse[:, 1, :, 4:] = 4.0  # object logit on the right half, at stride 4
    with torch.no_grad():
        out = model.refine(coarse, guide, (32, 32))[0, 1]
    row = out[16]
    jumps = (row[1:] - row[:-1]).abs()
    assert int(jumps.argmax()) == 12  # the largest change is exactly at the image edge
    others = torch.cat([jumps[:12], jumps[13:]])
    assert jumps[12] > 2.0 and jumps[12] > 5 * others.max()
    up = F.interpolate(coarse, size=(32, 32), mode="bilinear")[0, 1, 16]
    assert (up[1:] - up[:-1]).abs().max() <= 1.0  # the plain up-sampling has no sharp step


def test_decoder_channels_narrow_the_stride4_decoder():
    wide, narrow = _model("all"), _model("all", decoder_channels=32)
    assert narrow.classifier.in_channels == 32 and wide.classifier.in_channels == wide.config.aspp_channels
    assert sum(p.numel() for p in narrow.parameters()) < sum(p.numel() for p in wide.parameters())
    with torch.no_grad():
        assert narrow(torch.randn(1, 3, 40, 40)).shape == (1, 2, 40, 40)


def test_old_config_dicts_build_the_old_architecture():
    old = {k: v for k, v in GFNConfig().to_dict().items() if k not in LEGACY_FIELDS}
    cfg = GFNConfig.from_dict({**old, "use_bg": False})
    assert (cfg.gf_mode, cfg.decoder_channels) == ("stride4", None) and not cfg.use_bg
    # a partial mapping (user overrides) keeps the current defaults for the fields it does not name
    assert GFNConfig.from_dict({"use_bg": False}).gf_mode == GFNConfig().gf_mode
    assert GFNConfig.from_dict(GFNConfig(gf_mode="fast").to_dict()).gf_mode == "fast"


def test_old_checkpoint_without_new_fields_loads(tmp_path: Path):
    model = _model("all", gf_mode="stride4")
    path = save_checkpoint(tmp_path / "m.pt", model, model.config, ClassMap.from_names(["horse"]))
    payload = torch.load(path, weights_only=True)
    payload["config"] = {k: v for k, v in payload["config"].items() if k not in LEGACY_FIELDS}
    torch.save(payload, path)  # as written before gf_mode / decoder_channels existed
    ck = load_checkpoint(path)
    assert ck.config == model.config
    x = torch.randn(1, 3, 37, 29)
    with torch.no_grad():
        torch.testing.assert_close(ck.model(x), model(x), rtol=0, atol=0)


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
