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
        tile=224,
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
        tile=448,
        keys={
            "trunk.cls_token": (1, 1, 1024),
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
    x = torch.empty(2, 3, enc.tile_size, enc.tile_size, device="meta")
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
    """CONCH v1.5 is run at 448 px; a checkpoint saved on the 224-px grid still loads."""
    enc = ENCODERS["conch-v1.5"]
    state = _published_state("conch-v1.5")
    state["trunk.pos_embed"] = torch.randn(1, 197, 1024)
    module = build_encoder_module(enc, device="meta")
    load_encoder_state(module, enc, state)
    assert tuple(module.trunk.pos_embed.shape) == (1, 785, 1024)
    assert not module.trunk.pos_embed.is_meta


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
    """The "Choosing a backbone" page states each encoder's dim, tile, µm/px, licence and
    gating as the registry does."""
    from pathlib import Path

    page = (Path(__file__).resolve().parents[2] / "docs" / "backbones.rst").read_text()
    lines = page.splitlines()
    for name, enc in ENCODERS.items():
        start = lines.index(f"   * - ``{name}``")
        cells = [line.strip().removeprefix("- ") for line in lines[start + 1 : start + 6]]
        assert cells == [
            str(enc.n_features),
            str(enc.tile_size),
            str(enc.mpp),
            enc.licence,
            "yes" if enc.gated else "no",
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
