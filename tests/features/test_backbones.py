import urllib.error

import pytest
import torch

from he2rna_sklearn.exceptions import WeightsNotFoundError
from he2rna_sklearn.features import build_backbone


def _params(module):
    return {k: v.clone() for k, v in module.state_dict().items()}


def test_random_init_is_seeded_and_headless():
    a = build_backbone("resnet18", None, random_state=0)
    b = build_backbone("resnet18", None, random_state=0)
    c = build_backbone("resnet18", None, random_state=1)
    assert a.weights_id == "random-init(seed=0)"
    pa, pb, pc = _params(a.module), _params(b.module), _params(c.module)
    assert all(torch.equal(pa[k], pb[k]) for k in pa)
    assert not torch.equal(pa["conv1.weight"], pc["conv1.weight"])
    out = a.module.eval()(torch.zeros(2, 3, 64, 64))
    assert out.shape == (2, 512)


def test_weights_from_local_file(tmp_path):
    from torchvision.models import resnet18

    torch.manual_seed(123)
    reference = resnet18()
    path = tmp_path / "my-resnet18.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in reference.state_dict().items()}}, path)
    backbone = build_backbone("resnet18", path)
    assert backbone.weights_id.startswith("file:my-resnet18.pth:sha1=")
    loaded = backbone.module.state_dict()
    assert torch.equal(loaded["conv1.weight"], reference.state_dict()["conv1.weight"])
    assert "fc.weight" not in loaded  # the classification head is removed


def test_weights_file_of_other_architecture_is_refused(tmp_path):
    from torchvision.models import resnet18

    path = tmp_path / "resnet18.pth"
    torch.save(resnet18().state_dict(), path)
    with pytest.raises(ValueError, match="do not fit backbone 'resnet34'"):
        build_backbone("resnet34", path)


def test_missing_weights_file():
    with pytest.raises(WeightsNotFoundError, match="nowhere.pth"):
        build_backbone("resnet18", "nowhere.pth")


def test_imagenet_weights_from_torchvision_cache(tmp_path, monkeypatch):
    from torchvision.models import ResNet18_Weights, resnet18

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    cached = tmp_path / "checkpoints" / ResNet18_Weights.IMAGENET1K_V1.url.rsplit("/", 1)[1]
    cached.parent.mkdir()
    torch.manual_seed(7)
    reference = resnet18().state_dict()
    torch.save(reference, cached)

    def no_download(*args, **kwargs):
        raise AssertionError("must not download when the cache has the file")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    backbone = build_backbone("resnet18", "imagenet")
    assert backbone.weights_id == "torchvision:IMAGENET1K_V1"
    assert torch.equal(
        backbone.module.state_dict()["layer1.0.conv1.weight"], reference["layer1.0.conv1.weight"]
    )


def test_imagenet_weights_offline_raise_and_never_fall_back(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(WeightsNotFoundError) as info:
        build_backbone("resnet50", "imagenet")
    message = str(info.value)
    assert "resnet50-" in message and "weights=" in message and "checkpoints" in message


def test_unknown_weights_name():
    with pytest.raises(ValueError, match="not a known weights name"):
        build_backbone("resnet18", "IMAGENET99")


def test_unknown_backbone():
    with pytest.raises(ValueError, match="Unknown backbone 'resnet5000'"):
        build_backbone("resnet5000", None)


def test_module_backbone(tiny_cnn):
    backbone = build_backbone(tiny_cnn, None)
    assert backbone.module is tiny_cnn
    assert backbone.weights_id.startswith("module:TinyCNN:sha1=")
    with pytest.raises(ValueError, match="weights=None"):
        build_backbone(tiny_cnn, "imagenet")


def test_module_backbone_loads_state_dict(tiny_cnn, tmp_path):
    from ..conftest import TinyCNN

    other = TinyCNN(seed=5)
    path = tmp_path / "tiny.pt"
    torch.save(other.state_dict(), path)
    backbone = build_backbone(tiny_cnn, path)
    assert torch.equal(backbone.module.conv1.weight, other.conv1.weight)


def test_weights_file_that_is_not_a_checkpoint(tmp_path):
    text = tmp_path / "weights.pth"
    text.write_text("these are not weights\n")
    with pytest.raises(ValueError, match="weights.pth': not a PyTorch checkpoint") as info:
        build_backbone("resnet18", text)
    assert "weights_only" not in str(info.value)


def test_weights_file_that_would_run_code_is_refused(tmp_path):
    import os

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {tmp_path / 'ran'}",))

    torch.save({"conv1.weight": Evil()}, tmp_path / "evil.pth")
    with pytest.raises(ValueError, match="running code from the file \\(refused\\)") as info:
        build_backbone("resnet18", tmp_path / "evil.pth")
    assert "weights_only" not in str(info.value) and not (tmp_path / "ran").exists()


def test_weights_of_the_wrong_shapes(tmp_path):
    from torchvision.models import resnet18

    state = resnet18().state_dict()
    state["conv1.weight"] = torch.zeros(8, 3, 3, 3)
    torch.save(state, tmp_path / "shapes.pth")
    with pytest.raises(
        ValueError, match="shapes.pth' do not fit backbone 'resnet18': 1 tensor\\(s\\)"
    ):
        build_backbone("resnet18", tmp_path / "shapes.pth")
