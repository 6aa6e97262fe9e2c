"""The registry of pathology encoders: architectures, checkpoint keys, pooling, weights.

Real checkpoints are gigabytes and gated, so every registered encoder is built on the
``meta`` device (no memory) and loaded with a state dict that has the real checkpoint's key
names and shapes (the facts below, gathered from the model cards and from TRIDENT's and
STAMP's strict loads). Numerical behaviour is checked on tiny networks of the same kinds.
"""

import functools
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch

from he2rna_sklearn.exceptions import WeightsNotFoundError
from he2rna_sklearn.features import (
    ENCODERS,
    Encoder,
    FeatureRunner,
    TileEncoder,
    _backbones,
    build_backbone,
    get_encoder,
    list_encoders,
)
from he2rna_sklearn.features._checkpoints import load_encoder_state
from he2rna_sklearn.features._encoder_modules import _AttentionalPool, build_encoder_module
from he2rna_sklearn.features._encoders import is_encoder_name
from tests.test_hub import make_cached_repo

pytest.importorskip("timm")

IMAGENET = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
HOPTIMUS = ((0.707223, 0.578729, 0.703617), (0.211883, 0.230117, 0.177517))

#: Per encoder: feature dim, normalisation, tile size, and keys of the published checkpoint
#: with their shapes (a few distinctive ones), keys it must not have, and its key layout.
FACTS = {
    "uni": dict(
        dim=1024,
        norm=IMAGENET,
        tile=224,
        keys={
            "cls_token": (1, 1, 1024),
            "pos_embed": (1, 197, 1024),
            "patch_embed.proj.weight": (1024, 3, 16, 16),
            "blocks.23.ls1.gamma": (1024,),
            "blocks.23.mlp.fc1.weight": (4096, 1024),
            "norm.weight": (1024,),
        },
        absent=("reg_token", "head.weight", "blocks.24.norm1.weight"),
    ),
    "uni2-h": dict(
        dim=1536,
        norm=IMAGENET,
        tile=224,
        keys={
            "reg_token": (1, 8, 1536),
            "pos_embed": (1, 256, 1536),  # no_embed_class: patches only
            "patch_embed.proj.weight": (1536, 3, 14, 14),
            "blocks.23.mlp.fc1.weight": (8192, 1536),  # SwiGLU, packed
            "blocks.23.mlp.fc2.weight": (1536, 4096),
            "blocks.23.ls2.gamma": (1536,),
        },
        absent=("blocks.24.norm1.weight", "head.weight"),
    ),
    "virchow": dict(
        dim=2560,
        norm=IMAGENET,
        tile=224,
        keys={
            "pos_embed": (1, 257, 1280),
            "patch_embed.proj.weight": (1280, 3, 14, 14),
            "blocks.31.mlp.fc1.weight": (6832, 1280),
            "blocks.31.mlp.fc2.weight": (1280, 3416),
            "blocks.31.ls1.gamma": (1280,),
        },
        absent=("reg_token", "blocks.32.norm1.weight"),
    ),
    "virchow2": dict(
        dim=2560,
        norm=IMAGENET,
        tile=224,
        keys={
            "reg_token": (1, 4, 1280),
            "pos_embed": (1, 261, 1280),
            "blocks.31.mlp.fc1.weight": (6832, 1280),
            "blocks.31.ls2.gamma": (1280,),
        },
        absent=("blocks.32.norm1.weight",),
    ),
    "virchow-cls": dict(  # STAMP's "virchow": Virchow's class token alone
        dim=1280,
        norm=IMAGENET,
        tile=224,
        keys={"pos_embed": (1, 257, 1280), "blocks.31.mlp.fc1.weight": (6832, 1280)},
        absent=("reg_token",),
    ),
    "virchow2-cls": dict(  # STAMP's "virchow2"
        dim=1280,
        norm=IMAGENET,
        tile=224,
        keys={"reg_token": (1, 4, 1280), "pos_embed": (1, 261, 1280)},
        absent=("blocks.32.norm1.weight",),
    ),
    "h-optimus-0": dict(
        dim=1536,
        norm=HOPTIMUS,
        tile=224,
        keys={
            "reg_token": (1, 4, 1536),
            "pos_embed": (1, 256, 1536),
            "patch_embed.proj.weight": (1536, 3, 14, 14),
            "blocks.39.mlp.fc1.weight": (8192, 1536),
            "blocks.39.mlp.fc2.weight": (1536, 4096),
        },
        absent=("blocks.40.norm1.weight",),
    ),
    "h-optimus-1": dict(
        dim=1536,
        norm=HOPTIMUS,
        tile=224,
        keys={"reg_token": (1, 4, 1536), "blocks.39.ls1.gamma": (1536,)},
        absent=("blocks.40.norm1.weight",),
    ),
    "phikon": dict(
        dim=768,
        norm=IMAGENET,
        tile=224,
        layout="hf-vit",
        config=dict(depth=12, dim=768, hidden=3072, grid=14, patch=16),
    ),
    "phikon-v2": dict(
        dim=1024,
        norm=IMAGENET,
        tile=224,
        layout="hf-dinov2",
        config=dict(depth=24, dim=1024, hidden=4096, grid=14, patch=16),
    ),
    "prov-gigapath": dict(
        dim=1536,
        norm=IMAGENET,
        tile=256,  # the card's Resize(256) + CenterCrop(224)
        input=224,
        keys={
            "pos_embed": (1, 197, 1536),
            "patch_embed.proj.weight": (1536, 3, 16, 16),
            "blocks.39.mlp.fc1.weight": (8192, 1536),
            "blocks.39.mlp.fc2.weight": (1536, 4096),
            "blocks.39.ls1.gamma": (1536,),
        },
        absent=("reg_token", "blocks.40.norm1.weight"),
    ),
    "conch-v1.5": dict(
        dim=768,
        norm=IMAGENET,
        tile=512,  # 512 px at 20x resized to 448, as TRIDENT and TITAN
        input=448,
        keys={
            "trunk.cls_token": (1, 1, 1024),
            "trunk.pos_embed": (1, 197, 1024),  # the trunk's 224-px grid, as in TRIDENT
            "trunk.patch_embed.proj.weight": (1024, 3, 16, 16),
            "trunk.blocks.23.ls1.gamma": (1024,),
            "attn_pool_contrast.query": (1, 768),
            "attn_pool_contrast.ln_k.weight": (1024,),
            "attn_pool_contrast.ln_q.weight": (768,),
            "attn_pool_contrast.to_q.weight": (768, 768),
            "attn_pool_contrast.to_kv.weight": (1536, 1024),
            "attn_pool_contrast.to_out.weight": (768, 768),
            "ln_contrast.weight": (768,),
        },
        absent=("trunk.head.weight",),
    ),
}


def _hf_state(layout, depth, dim, hidden, grid, patch):
    """A Hugging Face ViTModel / Dinov2Model checkpoint's names and shapes (transformers 4,
    as published), on the meta device."""
    m = lambda *s: torch.empty(s, device="meta")  # noqa: E731
    state = {
        "embeddings.cls_token": m(1, 1, dim),
        "embeddings.position_embeddings": m(1, grid * grid + 1, dim),
        "embeddings.patch_embeddings.projection.weight": m(dim, 3, patch, patch),
        "embeddings.patch_embeddings.projection.bias": m(dim),
        "layernorm.weight": m(dim),
        "layernorm.bias": m(dim),
    }
    for i in range(depth):
        p = f"encoder.layer.{i}."
        for q in ("query", "key", "value"):
            state[f"{p}attention.attention.{q}.weight"] = m(dim, dim)
            state[f"{p}attention.attention.{q}.bias"] = m(dim)
        state[f"{p}attention.output.dense.weight"] = m(dim, dim)
        state[f"{p}attention.output.dense.bias"] = m(dim)
        if layout == "hf-vit":
            names = [("layernorm_before", dim), ("layernorm_after", dim)]
            state[f"{p}intermediate.dense.weight"] = m(hidden, dim)
            state[f"{p}intermediate.dense.bias"] = m(hidden)
            state[f"{p}output.dense.weight"] = m(dim, hidden)
            state[f"{p}output.dense.bias"] = m(dim)
        else:
            names = [("norm1", dim), ("norm2", dim)]
            state[f"{p}mlp.fc1.weight"] = m(hidden, dim)
            state[f"{p}mlp.fc1.bias"] = m(hidden)
            state[f"{p}mlp.fc2.weight"] = m(dim, hidden)
            state[f"{p}mlp.fc2.bias"] = m(dim)
            state[f"{p}layer_scale1.lambda1"] = m(dim)
            state[f"{p}layer_scale2.lambda1"] = m(dim)
        for n, d in names:
            state[f"{p}{n}.weight"] = m(d)
            state[f"{p}{n}.bias"] = m(d)
    if layout == "hf-vit":  # ViTModel's pooler head, not part of the features
        state["pooler.dense.weight"] = m(dim, dim)
        state["pooler.dense.bias"] = m(dim)
    else:
        state["embeddings.mask_token"] = m(1, dim)
    return state


@functools.cache
def _published(name):
    """The encoder's checkpoint names and shapes, on the meta device (built once)."""
    facts = FACTS[name]
    enc = ENCODERS[name]
    if facts.get("layout", "timm") != "timm":
        return _hf_state(facts["layout"], **facts["config"])
    module = build_encoder_module(enc, device="meta")
    target = module if enc.checkpoint_layout == "conch-v1.5" else module.trunk
    state = {k: torch.empty(v.shape, device="meta") for k, v in target.state_dict().items()}
    for key, shape in facts["keys"].items():
        assert key in state, f"{name}: {key} missing from the architecture"
        assert tuple(state[key].shape) == shape, f"{name}: {key} {tuple(state[key].shape)}"
    for key in facts.get("absent", ()):
        assert key not in state, f"{name}: unexpected {key}"
    return state


def _published_state(name):
    return dict(_published(name))


COMMIT = ("0123456789abcdef" * 3)[:40]


@pytest.fixture
def hf_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache (HF_HUB_CACHE); ``add(repo, file, data)`` puts a file in
    it as ``hf download`` does: a blob, a snapshot symlink and ``refs/main``."""
    root = tmp_path / "hf-cache"
    root.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(root))

    def add(repo_id, filename, data=b"placeholder", *, folder=None, commit=COMMIT, ref="main"):
        name = folder or f"models--{repo_id.replace('/', '--')}"
        return make_cached_repo(root, name, {filename: data}, commit=commit, ref=ref) / filename

    add.root = root
    return add


def test_registry_lists_every_encoder_of_the_issue():
    table = list_encoders()
    for name in [
        "resnet50",
        "uni",
        "uni2-h",
        "virchow",
        "virchow2",
        "h-optimus-0",
        "h-optimus-1",
        "phikon",
        "phikon-v2",
        "prov-gigapath",
        "conch-v1.5",
    ]:
        assert name in table.index
    assert table.loc["resnet50", "n_features"] == 2048
    assert table.loc["resnet50", "architecture"] == "torchvision:resnet50"
    assert not table.loc["phikon", "gated"] and table.loc["uni", "gated"]
    assert table.loc["conch-v1.5", "input_size"] == 448 and table.loc["uni", "input_size"] == 224


@pytest.mark.parametrize("name", sorted(FACTS))
def test_encoder_loads_its_published_keys(name, hf_cache, monkeypatch):
    """Built on meta, the published checkpoint's keys load strictly through build_backbone's
    own path (HF cache lookup, key renaming), with the right normalisation and output dim."""
    facts = FACTS[name]
    enc = ENCODERS[name]
    state = _published_state(name)
    hf_cache(enc.repo_id, enc.weight_files[0])
    monkeypatch.setattr(_backbones, "_read_state_dict", lambda path, **kw: dict(state))
    bb = build_backbone(name, "pretrained")
    assert bb.name == f"encoder:{name}" and bb.encoder is enc
    assert bb.weights_id.startswith(f"hf-hub:{enc.repo_id}@0123456789ab/")
    assert (bb.mean, bb.std) == facts["norm"]
    assert enc.tile_size == facts["tile"] and enc.n_features == facts["dim"]
    assert enc.input_size == facts.get("input", facts["tile"])
    x = torch.empty(2, 3, enc.input_size, enc.input_size, device="meta")
    assert tuple(bb.module(x).shape) == (2, facts["dim"])


@pytest.mark.parametrize("name", ["uni", "phikon-v2", "conch-v1.5"])
def test_strict_load_names_missing_unexpected_and_misshapen_keys(name):
    enc = ENCODERS[name]
    state = _published_state(name)
    module = build_encoder_module(enc, device="meta")
    first = next(iter(state))
    broken = {k: v for k, v in state.items() if k != first}
    broken["blocks.99.extra.weight"] = torch.empty(3, device="meta")
    with pytest.raises(ValueError, match=rf"1 missing keys.*1 unexpected keys.*{enc.url}"):
        load_encoder_state(module, enc, broken)
    key = next(k for k in state if any(w in k for w in ("fc1.w", "intermediate.dense.w")))
    wrong = dict(state)
    wrong[key] = torch.empty(7, 7, device="meta")
    with pytest.raises(ValueError, match="1 of the wrong shape"):
        load_encoder_state(module, enc, wrong)


def test_position_embeddings_saved_at_another_grid_are_resampled():
    """A CONCH v1.5 checkpoint saved on the 448-px grid loads into the trunk's 224-px grid,
    resampled bilinearly as TRIDENT's loader does (the forward pass interpolates)."""
    from timm.layers import resample_abs_pos_embed

    enc = ENCODERS["conch-v1.5"]
    state = _published_state("conch-v1.5")
    saved = torch.randn(1, 785, 1024)
    state["trunk.pos_embed"] = saved
    module = build_encoder_module(enc, device="meta")
    load_encoder_state(module, enc, state)
    want = resample_abs_pos_embed(
        saved, (14, 14), num_prefix_tokens=1, interpolation="bilinear", antialias=False
    )
    torch.testing.assert_close(module.trunk.pos_embed.data, want)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_missing_weights_say_how_to_get_them(name, hf_cache, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "torch"))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    enc = ENCODERS[name]
    with pytest.raises(WeightsNotFoundError) as info:
        build_backbone(name, "pretrained")
    message = str(info.value)
    assert "weights=" in message and "random weights" in message
    if enc.repo_id:
        assert enc.repo_id in message and "hf download" in message
        assert ("accept the conditions" in message) == enc.gated


def _uni_loads_from(monkeypatch):
    """build_backbone reads UNI's published key names and shapes (on meta) from any file."""
    state = _published_state("uni")
    read = []

    def fake_read(path, **kwargs):
        read.append(path)
        return dict(state)

    monkeypatch.setattr(_backbones, "_read_state_dict", fake_read)
    return read


def test_uni_cache_made_by_timm_is_found(hf_cache, monkeypatch):
    """``timm.create_model("hf-hub:MahmoodLab/uni", pretrained=True)`` (the UNI card's call,
    TRIDENT's and STAMP's) caches the repository as ``models--MahmoodLab--uni``: config.json,
    pytorch_model.bin, and a ``.no_exist`` marker for the model.safetensors it tried first.
    The lookup matches the folder case-insensitively, and the weights id keeps the registry's
    spelling, as the cache lookup of earlier versions wrote it."""
    read = _uni_loads_from(monkeypatch)
    path = hf_cache("MahmoodLab/UNI", "pytorch_model.bin", folder="models--MahmoodLab--uni")
    hf_cache("MahmoodLab/UNI", "config.json", b"{}", folder="models--MahmoodLab--uni")
    no_exist = hf_cache.root / "models--MahmoodLab--uni" / ".no_exist" / COMMIT
    no_exist.mkdir(parents=True)
    (no_exist / "model.safetensors").touch()
    want = f"hf-hub:MahmoodLab/UNI@{COMMIT[:12]}/pytorch_model.bin"
    for name in ("uni", "hf-hub:MahmoodLab/uni", "hf-hub:MahmoodLab/UNI"):
        bb = build_backbone(name, "pretrained")
        assert bb.weights_id == want and bb.name == "encoder:uni"
        assert read[-1] == path
    # The id is the one huggingface_hub's own lookup gives for the Hub's spelling.
    from huggingface_hub import try_to_load_from_cache

    (hf_cache.root / "models--MahmoodLab--uni").rename(hf_cache.root / "models--MahmoodLab--UNI")
    found = try_to_load_from_cache("MahmoodLab/UNI", "pytorch_model.bin", cache_dir=hf_cache.root)
    assert want == f"hf-hub:MahmoodLab/UNI@{Path(found).parent.name[:12]}/pytorch_model.bin"
    assert build_backbone("uni", "pretrained").weights_id == want


STAMP_UNI = "77ffbca1ee1cdcee6e87f6deebd2db8a5888c721"  # STAMP's pinned UNI revision


def test_pinned_revision_without_refs_main_is_found(hf_cache, monkeypatch):
    """STAMP loads ``hf-hub:MahmoodLab/uni@<commit>``: ``hf_hub_download`` with a commit
    writes the snapshot and no ``refs/main``. That snapshot is used; timm's ``@revision``
    in the backbone name picks one among several, and a revision not cached is an error."""
    _uni_loads_from(monkeypatch)
    folder = "models--MahmoodLab--uni"
    hf_cache("MahmoodLab/UNI", "pytorch_model.bin", folder=folder, commit=STAMP_UNI, ref=None)
    assert not (hf_cache.root / folder / "refs").exists()
    pinned = f"hf-hub:MahmoodLab/UNI@{STAMP_UNI[:12]}/pytorch_model.bin"
    assert build_backbone("uni", "pretrained").weights_id == pinned
    assert build_backbone(f"hf-hub:MahmoodLab/uni@{STAMP_UNI}", "pretrained").weights_id == pinned
    # Later `hf download MahmoodLab/UNI` adds the Hub's spelling with refs/main: the default.
    hf_cache("MahmoodLab/UNI", "pytorch_model.bin")
    assert build_backbone("uni", "pretrained").weights_id.startswith("hf-hub:MahmoodLab/UNI@0123")
    bb = build_backbone(f"hf-hub:MahmoodLab/uni@{STAMP_UNI[:8]}", "pretrained")
    assert bb.weights_id == pinned
    with pytest.raises(WeightsNotFoundError, match="Revision 'fedcba98'.*77ffbca1ee1c"):
        build_backbone("hf-hub:MahmoodLab/UNI@fedcba98", "pretrained")
    with pytest.raises(ValueError, match="revision 'fedcba98'.*weights=None"):
        build_backbone("hf-hub:MahmoodLab/UNI@fedcba98", None)
    # Two pinned snapshots and no refs/main: refused, saying how to name one.
    (hf_cache.root / "models--MahmoodLab--UNI" / "refs" / "main").unlink()
    with pytest.raises(ValueError, match="2 snapshots.*backbone='hf-hub:MahmoodLab/UNI@<commit>'"):
        build_backbone("uni", "pretrained")


def test_missing_weights_file_and_imagenet_are_refused(tmp_path):
    with pytest.raises(WeightsNotFoundError, match="nowhere.bin"):
        build_backbone("uni", tmp_path / "nowhere.bin")
    with pytest.raises(ValueError, match="not ImageNet ones.*'pretrained'"):
        build_backbone("virchow2", "imagenet")
    with pytest.raises(ValueError, match="must be 'pretrained'"):
        build_backbone("uni", "IMAGENET1K_V2")


def test_names_aliases_and_hub_names():
    assert get_encoder("hf-hub:MahmoodLab/UNI").name == "uni"
    assert get_encoder("hf_hub:prov-gigapath/prov-gigapath").name == "prov-gigapath"
    assert get_encoder("HF-HUB:paige-ai/Virchow2").name == "virchow2"
    assert get_encoder("uni_v1").name == "uni" and get_encoder("hoptimus1").name == "h-optimus-1"
    assert get_encoder("conch_v15").name == "conch-v1.5"
    with pytest.raises(ValueError, match="not a registered encoder repository.*TileEncoder"):
        build_backbone("hf-hub:someone/unknown-model", None)
    with pytest.raises(KeyError, match="No registered encoder"):
        get_encoder("uni3")


def test_stamp_names_keep_stamps_meaning(hf_cache, monkeypatch):
    """STAMP's ``virchow`` and ``virchow2`` extractors return ``model(x)[:, 0]``, the
    1,280-d class token; its ``virchow-full`` is the class token and the mean of the patch
    tokens (2,560-d), which is what the cards, TRIDENT and plain names here give."""
    assert get_encoder("stamp:virchow") is ENCODERS["virchow-cls"]
    assert get_encoder("STAMP:virchow2") is ENCODERS["virchow2-cls"]
    assert get_encoder("stamp:virchow-full") is ENCODERS["virchow"]
    assert get_encoder("virchow-full") is ENCODERS["virchow"]
    assert get_encoder("stamp:conch1_5") is ENCODERS["conch-v1.5"]
    assert get_encoder("stamp:uni2") is ENCODERS["uni2-h"]
    for name in ("virchow", "virchow2"):
        assert get_encoder(name).n_features == 2560
        assert get_encoder(f"trident:{name}") is get_encoder(name)
        assert get_encoder(f"stamp:{name}").n_features == 1280
        cls_only, full = ENCODERS[f"{name}-cls"], ENCODERS[name]
        same = ("architecture", "timm_kwargs", "repo_id", "weight_files", "mean", "std")
        assert all(getattr(cls_only, a) == getattr(full, a) for a in same)
        assert (cls_only.pooling, full.pooling) == ("cls", "cls+mean")
    assert get_encoder("hf-hub:paige-ai/Virchow2") is ENCODERS["virchow2"]  # the card's
    state = _published_state("virchow2-cls")  # built on meta: no 2.5 GB of random weights
    monkeypatch.setattr(_backbones, "_read_state_dict", lambda path, **kw: dict(state))
    hf_cache("paige-ai/Virchow2", "model.safetensors")
    bb = build_backbone("stamp:virchow2", "pretrained")
    assert bb.name == "encoder:virchow2-cls"
    assert tuple(bb.module(torch.empty(1, 3, 224, 224, device="meta")).shape) == (1, 1280)
    with pytest.raises(ValueError, match="CONCH v1 \\(512-d\\) is not registered here"):
        build_backbone("stamp:conch", None)
    with pytest.raises(KeyError, match="truncated after the third stage"):
        get_encoder("trident:resnet50")
    with pytest.raises(KeyError, match="not one of STAMP's encoder names"):
        get_encoder("stamp:virchow3")


def test_stamp_virchow2_features_are_its_class_token():
    """On a tiny network of Virchow2's kind (SwiGLU, 4 registers), ``stamp:virchow2``'s
    features are STAMP's ``model(x)[:, 0]`` from timm with the hub config (no pooling)."""
    import dataclasses

    import timm

    card = ENCODERS["virchow2-cls"]
    tiny = dict(card.timm_kwargs, img_size=28, embed_dim=16, depth=2, num_heads=2, mlp_ratio=4.0)
    enc = dataclasses.replace(card, name="tiny-virchow2-cls", timm_kwargs=tiny, n_features=16)
    torch.manual_seed(6)
    layers = dict(mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU)
    stamp = timm.create_model(card.architecture, **dict(tiny, **layers, global_pool="")).eval()
    bb = build_backbone(enc, None, random_state=0)
    bb.module.trunk.load_state_dict(stamp.state_dict())
    x = torch.randn(2, 3, 28, 28)
    with torch.no_grad():
        torch.testing.assert_close(bb.module.eval()(x), stamp(x)[:, 0], rtol=1e-5, atol=1e-6)


def test_names_are_normalized_and_misspellings_get_suggestions():
    """Case, spaces, ``-``, ``_`` and ``.`` do not matter (``conch_v1_5`` was refused while
    ``h_optimus_0`` was accepted); an unknown name gets the closest registered ones."""
    for name in ("conch_v1_5", "CONCH v1.5", "Conch-V15", "conchv1_5", "conch_v15"):
        assert is_encoder_name(name) and get_encoder(name).name == "conch-v1.5", name
    for name in ("h_optimus_0", "H-Optimus-0", "hoptimus0", "h optimus 0"):
        assert get_encoder(name).name == "h-optimus-0", name
    assert (
        get_encoder("UNI2_H").name == "uni2-h"
        and get_encoder("stamp:Conch1.5").name == "conch-v1.5"
    )
    with pytest.raises(KeyError, match="No registered encoder 'virchow3'. Did you mean 'virchow'"):
        get_encoder("virchow3")
    with pytest.raises(
        ValueError, match="Unknown backbone 'uni3'.*Did you mean 'uni' or 'uni2-h'\\?"
    ):
        build_backbone("uni3", None)
    with pytest.raises(ValueError, match="Did you mean 'resnet50'"):
        build_backbone("resnet5000", None)
    with pytest.raises(ValueError, match="Did you mean 'conch-v1.5'"):
        build_backbone("conch-v2", None)
    # A tool's unknown name: a ValueError (one line at the command line), with suggestions.
    with pytest.raises(ValueError, match="Did you mean 'stamp:virchow' or 'stamp:virchow2'"):
        build_backbone("stamp:virchow3", None)
    with pytest.raises(ValueError, match="Did you mean 'hf-hub:MahmoodLab/UNI'"):
        get_encoder("hf-hub:MahmoodLab/UNI3")


def _tiny_vit(**extra):
    return Encoder(
        name="tiny-vit",
        architecture="vit_tiny_patch16_224",
        timm_kwargs=dict(
            img_size=32,
            patch_size=16,
            embed_dim=16,
            depth=2,
            num_heads=2,
            num_classes=0,
            dynamic_img_size=True,
            init_values=1e-5,
            reg_tokens=2,
        ),
        n_features=32,
        pooling="cls+mean",
        mean=(0.6, 0.5, 0.4),
        std=(0.2, 0.25, 0.3),
        tile_size=32,
        repo_id="test/tiny-vit",
        weight_files=("model.safetensors",),
        n_prefix_tokens=3,
        **extra,
    )


def test_pretrained_weights_from_the_hf_cache_end_to_end(hf_cache, tmp_path):
    """A real (tiny) checkpoint in the HF cache: loaded offline, pooled as the card says,
    normalised with the encoder's own mean/std by the feature runner."""
    import timm
    from safetensors.torch import save_file

    enc = _tiny_vit()
    torch.manual_seed(3)
    ref = timm.create_model(enc.architecture, **enc.timm_kwargs).eval()
    with torch.no_grad():
        for p in ref.parameters():
            p.normal_(0, 0.3)
    path = tmp_path / "model.safetensors"
    save_file(ref.state_dict(), path)
    hf_cache(enc.repo_id, "model.safetensors", path.read_bytes())

    bb = build_backbone(enc, "pretrained")
    assert bb.weights_id.startswith("hf-hub:test/tiny-vit@") and bb.mean == enc.mean
    runner = FeatureRunner(bb, device="cpu", precision="fp32")
    tiles = torch.randint(0, 256, (3, 3, 32, 32), dtype=torch.uint8)
    got = runner(tiles)
    x = (tiles.float() / 255 - torch.tensor(enc.mean).view(1, 3, 1, 1)) / torch.tensor(
        enc.std
    ).view(1, 3, 1, 1)
    with torch.no_grad():
        tokens = ref.forward_features(x)
    want = torch.cat([tokens[:, 0], tokens[:, 3:].mean(1)], dim=1).numpy()
    assert got.shape == (3, 32)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)

    # The same weights from a local file (torch.load, weights_only) give the same features.
    torch.save({"state_dict": ref.state_dict()}, tmp_path / "tiny.pth")
    bb2 = build_backbone(enc, tmp_path / "tiny.pth")
    assert bb2.weights_id.startswith("file:tiny.pth:sha1=")
    np.testing.assert_allclose(FeatureRunner(bb2, "cpu", "fp32")(tiles), got, rtol=1e-5)


def test_a_folder_is_accepted_as_weights(hf_cache, tmp_path):
    """``hf download REPO --local-dir DIR`` writes the files and ``.cache/huggingface/``
    metadata; DIR as weights= loads the checkpoint in it, named by its content as the file
    itself would be. A repository's cache folder (``models--org--name``, copied out of a
    cache) and a whole hub cache are read as the cache is."""
    import timm
    from safetensors.torch import save_file

    enc = _tiny_vit()
    torch.manual_seed(5)
    ref = timm.create_model(enc.architecture, **enc.timm_kwargs).eval()
    local = tmp_path / "tiny-vit"
    meta = local / ".cache" / "huggingface" / "download"
    meta.mkdir(parents=True)
    save_file(ref.state_dict(), local / "model.safetensors")
    (local / "config.json").write_text("{}")
    (local / ".cache" / "huggingface" / ".gitignore").write_text("*")
    (meta / "model.safetensors.metadata").write_text(f"{COMMIT}\n{'e' * 64}\n1712656091.123\n")
    by_file = build_backbone(enc, local / "model.safetensors")
    by_folder = build_backbone(enc, local)
    assert by_folder.weights_id == by_file.weights_id
    assert by_folder.weights_id.startswith("file:model.safetensors:sha1=")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(by_folder.module(x), by_file.module(x), rtol=0, atol=0)
    hf_cache(enc.repo_id, "model.safetensors", (local / "model.safetensors").read_bytes())
    cached = f"hf-hub:test/tiny-vit@{COMMIT[:12]}/model.safetensors"
    assert build_backbone(enc, hf_cache.root / "models--test--tiny-vit").weights_id == cached
    assert build_backbone(enc, str(hf_cache.root)).weights_id == cached
    (tmp_path / "empty").mkdir()
    with pytest.raises(WeightsNotFoundError, match=r"'tiny-vit'.*empty' has no model.safetensors"):
        build_backbone(enc, tmp_path / "empty")
    with pytest.raises(WeightsNotFoundError, match="is a folder: pass the checkpoint file"):
        build_backbone("resnet18", local)


def test_random_weights_only_when_asked_and_seeded():
    enc = _tiny_vit()
    a = build_backbone(enc, None, random_state=1)
    b = build_backbone(enc, None, random_state=1)
    assert a.weights_id == "random-init(seed=1)"
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(a.module(x), b.module(x))


def test_hf_checkpoints_match_transformers_numerically():
    """Phikon (ViTModel) and Phikon-v2 (Dinov2Model) keys renamed to timm's give the same
    class token as the reference implementation, on tiny random networks."""
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    x = torch.randn(2, 3, 32, 32)
    common = dict(img_size=32, patch_size=8, embed_dim=32, depth=2, num_heads=4)
    vit = transformers.ViTModel(
        transformers.ViTConfig(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            image_size=32,
            patch_size=8,
            layer_norm_eps=1e-6,
        )
    ).eval()
    dino = transformers.Dinov2Model(
        transformers.Dinov2Config(
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            mlp_ratio=4,
            image_size=64,  # saved on another grid: resampled on loading
            patch_size=8,
            layerscale_value=0.5,
        )
    ).eval()
    with torch.no_grad():
        for p in list(vit.parameters()) + list(dino.parameters()):
            p.normal_(0, 0.2)
    cases = [
        (vit, "hf-vit", dict(common, mlp_ratio=2.0)),
        (dino, "hf-dinov2", dict(common, mlp_ratio=4.0, init_values=1.0)),
    ]
    for hf, layout, kwargs in cases:
        enc = Encoder(
            name="t",
            architecture="vit_base_patch16_224",
            timm_kwargs=dict(kwargs, num_classes=0, dynamic_img_size=True),
            n_features=32,
            checkpoint_layout=layout,
        )
        module = build_encoder_module(enc, device="meta")
        load_encoder_state(module, enc, hf.state_dict())
        with torch.no_grad():
            want = hf(pixel_values=x).last_hidden_state[:, 0]
            torch.testing.assert_close(module.eval()(x), want, rtol=1e-4, atol=1e-5)


#: owkin/phikon's config.json on main since owkin merged "Update `layer_norm_eps` to match
#: timm" (PR #1, commit 1a3b784: iBOT's 1e-6; transformers' ViTConfig default is 1e-12).
PHIKON_CONFIG = dict(hidden_size=768, num_hidden_layers=12, layer_norm_eps=1e-6, patch_size=16)


def test_phikon_layer_norm_eps_is_the_published_configs():
    """Phikon's LayerNorms use the eps of its published config (TRIDENT builds it with
    ``ViTModel.from_pretrained("owkin/phikon")``, which reads that config)."""
    module = build_encoder_module(ENCODERS["phikon"], device="meta")
    eps = {m.eps for m in module.modules() if isinstance(m, torch.nn.LayerNorm)}
    assert eps == {PHIKON_CONFIG["layer_norm_eps"]}


def _trident_conch(ref_trunk, state, x, patch):
    """CONCH v1.5's forward as TRIDENT builds it (facts from its conchv1_5.py): patch
    embedding, class token, the trunk's position embeddings interpolated bicubically with
    DINO's scale factor (rows + 0.1) / side, the blocks and norm of the trunk, then the
    attentional pooler (scaled dot-product, one query) and a final LayerNorm."""
    f = torch.nn.functional
    tokens = f.conv2d(
        x,
        state["trunk.patch_embed.proj.weight"],
        state["trunk.patch_embed.proj.bias"],
        stride=patch,
    )
    rows, cols = tokens.shape[-2:]
    tokens = tokens.flatten(2).transpose(1, 2)
    pos = state["trunk.pos_embed"]
    side = int((pos.shape[1] - 1) ** 0.5)
    if (rows, cols) != (side, side):
        grid = pos[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = f.interpolate(
            grid, scale_factor=((rows + 0.1) / side, (cols + 0.1) / side), mode="bicubic"
        )
        pos = torch.cat([pos[:, :1], grid.permute(0, 2, 3, 1).reshape(1, rows * cols, -1)], 1)
    cls = state["trunk.cls_token"].expand(len(x), -1, -1)
    tokens = ref_trunk.norm(ref_trunk.blocks(torch.cat([cls, tokens], 1) + pos))
    p = "attn_pool_contrast."
    d = state[p + "query"].shape[1]
    k, v = f.linear(
        f.layer_norm(tokens, (tokens.shape[-1],), state[p + "ln_k.weight"], state[p + "ln_k.bias"]),
        state[p + "to_kv.weight"],
    ).chunk(2, -1)
    q = f.linear(
        f.layer_norm(state[p + "query"], (d,), state[p + "ln_q.weight"], state[p + "ln_q.bias"]),
        state[p + "to_q.weight"],
    )
    heads, out = 8, []
    for h in range(heads):
        s_ = slice(h * d // heads, (h + 1) * d // heads)
        att = (q[:, s_] @ k[..., s_].transpose(1, 2) * (d // heads) ** -0.5).softmax(-1)
        out.append(att @ v[..., s_])
    pooled = f.linear(torch.cat(out, -1), state[p + "to_out.weight"])[:, 0]
    return f.layer_norm(pooled, (d,), state["ln_contrast.weight"], state["ln_contrast.bias"])


def _tiny_conch(**card):
    """CONCH v1.5's vision tower with a tiny trunk (the pooler keeps its 768 dims)."""
    kwargs = dict(img_size=32, patch_size=8, embed_dim=16, depth=2, num_heads=2, mlp_ratio=4.0)
    return Encoder(
        name="tiny-conch",
        architecture="vit_large_patch16_224",
        timm_kwargs=dict(kwargs, init_values=1.0, num_classes=0, dynamic_img_size=True),
        n_features=768,
        pooling="attentional",
        checkpoint_layout="conch-v1.5",
        **card,
    )


def _tiny_conch_checkpoint(enc, seed=0):
    import timm

    torch.manual_seed(seed)
    state = {k: v.normal_(0, 0.2) for k, v in build_encoder_module(enc).state_dict().items()}
    ref_trunk = timm.create_model(enc.architecture, **dict(enc.timm_kwargs, dynamic_img_size=False))
    ref_trunk.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("trunk.")})
    return state, ref_trunk.eval()


def test_conch_position_embeddings_are_interpolated_as_trident_does():
    """The trunk keeps the checkpoint's grid (224 px for CONCH v1.5) and interpolates its
    position embeddings at each forward pass with DINO's scale factor, as TRIDENT does;
    resampling them once to the input grid differs by about 1e-4."""
    enc = _tiny_conch()
    state, ref_trunk = _tiny_conch_checkpoint(enc)
    module = build_encoder_module(enc, device="meta")
    load_encoder_state(module, enc, state)
    assert tuple(module.trunk.pos_embed.shape) == (1, 17, 16)  # the trunk's own 4 x 4 grid
    torch.manual_seed(1)
    for side in (56, 32):  # a 7 x 7 grid (interpolated), and the trunk's own
        x = torch.randn(2, 3, side, side)
        with torch.no_grad():
            got, want = module.eval()(x), _trident_conch(ref_trunk, state, x, patch=8)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert ENCODERS["conch-v1.5"].timm_kwargs["img_size"] == 224


def _pil_reference(tiles, resize, interpolation, crop, mean, std):
    """TRIDENT's and STAMP's preprocessing: PIL Resize, CenterCrop, ToTensor, Normalize."""
    from PIL import Image
    from torchvision import transforms as T

    mode = {"bilinear": T.InterpolationMode.BILINEAR, "bicubic": T.InterpolationMode.BICUBIC}
    transform = T.Compose(
        [
            T.Resize(resize, interpolation=mode[interpolation]),
            T.CenterCrop(crop),
            T.ToTensor(),
            T.Normalize(mean, std),
        ]
    )
    images = [Image.fromarray(t.permute(1, 2, 0).numpy()) for t in tiles]
    return torch.stack([transform(im) for im in images])


def _smooth_tiles(n, side, seed):
    """uint8 tiles with tissue-like smooth structure (random noise makes resampling
    kernels disagree most)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 6, 6, generator=g)
    up = torch.nn.functional.interpolate(low, size=(side, side), mode="bilinear")
    return (up * 200 + 30 + torch.rand(n, 3, side, side, generator=g) * 20).to(torch.uint8)


def test_conch_tiles_of_512_px_are_resized_to_448_as_trident_does(tmp_path):
    """TITAN/TRIDENT feed CONCH v1.5 512-px tiles at 20x, resized to 448 (PIL bilinear) and
    center-cropped; the registry says so, and the runner gives TRIDENT's features from
    the uint8 tiles (to PIL's rounding of a few pixels)."""
    card = ENCODERS["conch-v1.5"]
    assert (card.tile_size, card.mpp, card.resize, card.center_crop) == (
        512,
        0.5,
        (448, "bilinear"),
        448,
    )
    enc = _tiny_conch(tile_size=64, resize=(56, "bilinear"), center_crop=56)
    state, ref_trunk = _tiny_conch_checkpoint(enc, seed=2)
    torch.save(state, tmp_path / "pytorch_model_vision.bin")
    bb = build_backbone(enc, tmp_path / "pytorch_model_vision.bin")
    tiles = _smooth_tiles(3, 64, seed=3)
    got = FeatureRunner(bb, device="cpu", precision="fp32")(tiles)
    x = _pil_reference(tiles, 56, "bilinear", 56, enc.mean, enc.std)
    with torch.no_grad():
        want = _trident_conch(ref_trunk, state, x, patch=8).numpy()
    np.testing.assert_allclose(got, want, rtol=0, atol=5e-4 * np.abs(want).max())


def test_prov_gigapath_resize_and_center_crop_as_the_card(tmp_path):
    """Prov-GigaPath's card (and TRIDENT, STAMP): Resize(256, bicubic) + CenterCrop(224)
    of 256-px tiles. On 256-px tiles it is the central crop, exactly; other tiles are
    resized as PIL does first."""
    import timm
    from safetensors.torch import save_file

    card = ENCODERS["prov-gigapath"]
    assert (card.tile_size, card.resize, card.center_crop) == (256, (256, "bicubic"), 224)
    kwargs = dict(
        img_size=28,
        patch_size=4,
        embed_dim=16,
        depth=2,
        num_heads=2,
        mlp_ratio=4.0,
        mlp_layer="swiglu_packed",
        act_layer="silu",
        init_values=1e-5,
        num_classes=0,
        dynamic_img_size=True,
    )
    enc = Encoder(
        name="tiny-gigapath",
        architecture="vit_giant_patch14_dinov2",
        timm_kwargs=kwargs,
        n_features=16,
        tile_size=32,
        resize=(32, "bicubic"),
        center_crop=28,
    )
    torch.manual_seed(4)
    ref = timm.create_model(
        enc.architecture,
        **dict(kwargs, mlp_layer=timm.layers.SwiGLUPacked, act_layer=torch.nn.SiLU),
    ).eval()
    with torch.no_grad():
        for p_ in ref.parameters():
            p_.normal_(0, 0.2)
    save_file(ref.state_dict(), tmp_path / "model.safetensors")
    runner = FeatureRunner(build_backbone(enc, tmp_path), device="cpu", precision="fp32")
    for side, atol in ((32, 1e-5), (40, 5e-4)):
        tiles = _smooth_tiles(3, side, seed=side)
        x = _pil_reference(tiles, 32, "bicubic", 28, enc.mean, enc.std)
        with torch.no_grad():
            want = ref(x).numpy()  # timm's pooled class token, as the card's model(x)
        got = runner(tiles)
        np.testing.assert_allclose(got, want, rtol=0, atol=atol * np.abs(want).max())


def test_attentional_pool_is_multihead_cross_attention():
    torch.manual_seed(0)
    pool = _AttentionalPool(dim=16, context_dim=12, n_heads=4, n_queries=1).eval()
    x = torch.randn(3, 7, 12)
    with torch.no_grad():
        got = pool(x)
        k, v = pool.to_kv(pool.ln_k(x)).chunk(2, dim=-1)
        q = pool.to_q(pool.ln_q(pool.query))  # (1, 16)
        out = []
        for h in range(4):
            s = slice(4 * h, 4 * h + 4)
            att = torch.softmax(q[:, s] @ k[..., s].transpose(1, 2) / 2.0, dim=-1)
            out.append(att @ v[..., s])
        want = pool.to_out(torch.cat(out, dim=-1))
    torch.testing.assert_close(got, want)


class _Tokens(torch.nn.Module):
    """(B, 3, 4, 4) -> (B, 5, 8) tokens: a 'class token' then 4 'patch tokens'."""

    def forward(self, x):
        return x.flatten(1)[:, :40].reshape(len(x), 5, 8)


@pytest.mark.parametrize(
    "pooling, dim, expected",
    [
        ("cls", 8, lambda t: t[:, 0]),
        ("mean", 8, lambda t: t[:, 2:].mean(1)),
        ("cls+mean", 16, lambda t: torch.cat([t[:, 0], t[:, 2:].mean(1)], 1)),
    ],
)
def test_tile_encoder_states_pooling_and_normalisation(pooling, dim, expected):
    enc = TileEncoder(
        _Tokens(), mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5), pooling=pooling, n_prefix_tokens=2
    )
    bb = build_backbone(enc, None)
    assert bb.mean == (0.1, 0.2, 0.3) and bb.std == (0.5, 0.5, 0.5)
    assert bb.name == "module:_Tokens" and bb.weights_id.startswith("module:_Tokens:sha1=")
    tiles = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    got = FeatureRunner(bb, device="cpu", precision="fp32")(tiles)
    x = (tiles.float() / 255 - torch.tensor(bb.mean).view(1, 3, 1, 1)) / 0.5
    np.testing.assert_allclose(got, expected(_Tokens()(x)).numpy(), rtol=1e-5, atol=1e-6)
    assert got.shape == (2, dim)


def test_tile_encoder_checks_its_arguments(tiny_cnn):
    with pytest.raises(ValueError, match="pooling"):
        TileEncoder(tiny_cnn, pooling="max")
    with pytest.raises(ValueError, match="3 values"):
        TileEncoder(tiny_cnn, mean=(0.5, 0.5))
    with pytest.raises(ValueError, match="positive"):
        TileEncoder(tiny_cnn, std=(0.5, 0.0, 0.5))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        TileEncoder("resnet50")
    with pytest.raises(ValueError, match="needs \\(B, N, D\\) tokens"):
        TileEncoder(tiny_cnn, pooling="cls")(torch.zeros(1, 3, 32, 32))
    # A CNN wrapped with "avg" pooling of its feature map.
    cnn = torch.nn.Conv2d(3, 4, 3)
    out = TileEncoder(cnn, pooling="avg")(torch.zeros(2, 3, 8, 8))
    assert out.shape == (2, 4)


def test_docs_table_matches_the_registry():
    """The "Choosing a backbone" page states each encoder's dim, tile, µm/px, licence,
    gating and resize / crop as the registry does."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "backbones.rst").read_text()
    lines = page.splitlines()
    for name, enc in ENCODERS.items():
        start = lines.index(f"   * - ``{name}``")
        cells = [line.strip().removeprefix("- ") for line in lines[start + 1 : start + 9]]
        to_network = "as read"
        if enc.resize is not None:
            to_network = f"Resize({enc.resize[0]}, {enc.resize[1]}), CenterCrop({enc.center_crop})"
        assert cells[:5] + cells[7:] == [
            str(enc.n_features),
            str(enc.tile_size),
            str(enc.mpp),
            enc.licence,
            "yes" if enc.gated else "no",
            to_network,
        ], name


def test_slide_featurizer_runs_an_encoder(tmp_path):
    """An Encoder (here a tiny one) is a SlideFeaturizer backbone like a name; the feature
    files record it and its normalisation is used."""
    from he2rna_sklearn import SlideFeaturizer

    from ..conftest import CMU_SVS

    enc = _tiny_vit()
    feat = SlideFeaturizer(
        backbone=enc,
        weights=None,
        mpp=1.0,
        tile_size=32,
        max_tiles=4,
        cache_dir=tmp_path,
        precision="fp32",
        progress=False,
    )
    [bag] = feat.fit_transform([CMU_SVS])
    assert bag.shape == (4, 32)
    assert bag.meta["backbone"] == "encoder:tiny-vit"
    assert bag.meta["weights"] == "random-init(seed=0)"
    # A card's resize / crop changes the features, and the cache key: the first file is
    # not served for it, and the existing key (no transform) is what it was.
    from he2rna_sklearn.features._spec import SlideSpec

    cropped = SlideFeaturizer(
        **{**feat.get_params(), "backbone": _tiny_vit(resize=(48, "bicubic"), center_crop=32)}
    )
    [bag2] = cropped.fit_transform([CMU_SVS])
    assert len(list(tmp_path.glob("*.h5"))) == 2
    assert bag2.meta["input_transform"] == "resize=48:bicubic,center_crop=32"
    assert not np.allclose(np.asarray(bag2), np.asarray(bag))
    stored = SlideSpec.from_json(bag.meta["spec"])
    assert stored.input_transform is None and "input_transform" not in stored.to_json()
    assert stored.key() == bag.meta["spec_key"]
