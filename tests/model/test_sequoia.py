"""SEQUOIA: released checkpoints load strictly and offline; the head trains on bags."""

import json
import os
import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.utils import estimator_checks as ec

from he2rna_sklearn import Bag, FoldEnsembleRegressor, SequoiaRegressor, SuperTiles, load_sequoia
from he2rna_sklearn.exceptions import WeightsNotFoundError
from he2rna_sklearn.model import SEQUOIA_FEATURE_SPEC, from_pretrained
from tests.conftest import random_bags
from tests.test_hub import COMMIT_A, COMMIT_B, make_cached_repo

safetensors_torch = pytest.importorskip("safetensors.torch")

# Tiny dimensions; the real checkpoints have input_dim=1024, depth=6, nheads=16, 64/64/64,
# num_clusters=100 and 20,820 outputs, read from their config.json.
DIMS = dict(
    num_outputs=5,
    input_dim=8,
    depth=2,
    nheads=3,
    dimensions_f=4,
    dimensions_s=6,
    dimensions_c=7,
    num_clusters=10,
)


def sequoia_config(**dims):
    """config.json as PyTorchModelHubMixin writes it for SEQUOIA's ViS: its __init__
    arguments, defaults included (``device`` as the default string)."""
    return {**DIMS, **dims, "device": "cuda:0"}


def sequoia_state(cfg, seed=0):
    """Random weights under the state-dict names and shapes of SEQUOIA's ViS (from
    src/tformer_lin.py of gevaertlab/sequoia-pub), written out by hand."""
    g = torch.Generator().manual_seed(seed)
    D, f, s, c = cfg["input_dim"], cfg["dimensions_f"], cfg["dimensions_s"], cfg["dimensions_c"]
    shapes = {"pos_emb1D": (cfg["num_clusters"], D)}
    for i in range(cfg["depth"]):
        block = f"transformer.layers.{i}."
        for h in range(cfg["nheads"]):
            m = f"{block}0.mixers.{h}."
            shapes.update(
                {
                    m + "local_norm.weight": (f,),
                    m + "local_norm.bias": (f,),
                    m + "summary_norm.weight": (s,),
                    m + "summary_norm.bias": (s,),
                    m + "s.weight": (s, D),
                    m + "s.bias": (s,),
                    m + "f.weight": (f, D),
                    m + "f.bias": (f,),
                    m + "c.weight": (c, s + f),
                    m + "c.bias": (c,),
                }
            )
        shapes.update(
            {
                f"{block}0.projection.weight": (D, cfg["nheads"] * c),
                f"{block}0.projection.bias": (D,),
                f"{block}1.net.0.weight": (D,),
                f"{block}1.net.0.bias": (D,),
                f"{block}1.net.1.weight": (D, D),
                f"{block}1.net.1.bias": (D,),
                f"{block}1.net.3.weight": (D, D),
                f"{block}1.net.3.bias": (D,),
            }
        )
    shapes.update(
        {
            "linear_head.0.weight": (D,),
            "linear_head.0.bias": (D,),
            "linear_head.1.weight": (cfg["num_outputs"], D),
            "linear_head.1.bias": (cfg["num_outputs"],),
        }
    )
    return {k: torch.randn(shape, generator=g) * 0.5 for k, shape in shapes.items()}


def reference_forward(W, cfg, x, embed=False):
    """SEQUOIA's forward, written straight from the weights: (B, 100, D) -> (B, G)."""
    ln = lambda v, p: F.layer_norm(v, v.shape[-1:], W[p + ".weight"], W[p + ".bias"])  # noqa: E731
    lin = lambda v, p: v @ W[p + ".weight"].T + W[p + ".bias"]  # noqa: E731
    x = x + W["pos_emb1D"]
    for i in range(cfg["depth"]):
        b = f"transformer.layers.{i}."
        heads = []
        for h in range(cfg["nheads"]):
            m = f"{b}0.mixers.{h}."
            local = F.gelu(ln(lin(x, m + "f"), m + "local_norm"))
            summary = F.gelu(ln(lin(x, m + "s").mean(dim=1), m + "summary_norm"))
            summary = summary.unsqueeze(1).repeat(1, x.shape[1], 1)
            heads.append(F.gelu(lin(torch.cat([local, summary], dim=-1), m + "c")))
        x = lin(torch.cat(heads, dim=-1), b + "0.projection") + x
        x = lin(F.gelu(lin(ln(x, b + "1.net.0"), b + "1.net.1")), b + "1.net.3") + x
    z = x.mean(dim=1)
    return z if embed else lin(ln(z, "linear_head.0"), "linear_head.1")


GENES = [f"G{i}" for i in range(DIMS["num_outputs"])]


def write_checkpoint(folder, seed=0, genes=True, **dims):
    cfg = sequoia_config(**dims)
    W = sequoia_state(cfg, seed)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(cfg))
    safetensors_torch.save_file(W, folder / "model.safetensors")
    if genes:  # SEQUOIA's gene_list.csv: a header "gene", one name per row
        (folder / "gene_list.csv").write_text("gene\n" + "\n".join(GENES[: cfg["num_outputs"]]))
    return cfg, W


def cluster_bags(n=4, d=8, k=10, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(k, d)).astype(np.float32) for _ in range(n)]


def test_release_layout_loads_strictly_and_matches_a_reference_forward(tmp_path):
    cfg, W = write_checkpoint(tmp_path / "ckpt")
    model = SequoiaRegressor.from_pretrained(tmp_path / "ckpt")
    bags = cluster_bags()
    x = torch.from_numpy(np.stack(bags))
    pred = model.predict(bags)
    assert pred.shape == (4, 5) and list(model.gene_names_) == GENES
    with torch.no_grad():
        np.testing.assert_allclose(pred, reference_forward(W, cfg, x).numpy(), atol=1e-5)
        np.testing.assert_allclose(
            model.transform(bags), reference_forward(W, cfg, x, embed=True).numpy(), atol=1e-5
        )
    assert model.get_feature_names_out().shape == (8,)
    # Per-cluster scores average to the slide's prediction.
    np.testing.assert_allclose(model.predict_tiles(bags[1]).mean(0), pred[1], atol=1e-5)
    assert model.predict_tiles(bags[1], "G2").shape == (10,)
    assert model.source_ == os.fspath(tmp_path / "ckpt")


def test_hf_cache_layout_pinned_and_case_insensitive(tmp_path):
    cfg, W = write_checkpoint(tmp_path / "src")
    files = {p.name: p.read_bytes() for p in (tmp_path / "src").iterdir()}
    cache = tmp_path / "hub"
    # A pinned download (no refs/main), under another spelling of the repository name.
    make_cached_repo(cache, "models--GevaertLab--Sequoia-COAD-0", files, commit=COMMIT_A)
    model = SequoiaRegressor.from_pretrained("gevaertlab/sequoia-coad-0", cache_dir=cache)
    assert model.source_ == f"hf-hub:gevaertlab/sequoia-coad-0@{COMMIT_A[:12]}"
    bags = cluster_bags()
    with torch.no_grad():
        ref = reference_forward(W, cfg, torch.from_numpy(np.stack(bags))).numpy()
    np.testing.assert_allclose(model.predict(bags), ref, atol=1e-5)
    # The generic loader recognises SEQUOIA's layout.
    loaded = from_pretrained("gevaertlab/sequoia-coad-0", cache_dir=cache)
    np.testing.assert_allclose(loaded.predict(bags), ref, atol=1e-5)
    # A second snapshot without refs: ambiguous unless a revision is named.
    _, W2 = write_checkpoint(tmp_path / "src2", seed=1)
    files2 = {p.name: p.read_bytes() for p in (tmp_path / "src2").iterdir()}
    make_cached_repo(cache, "models--GevaertLab--Sequoia-COAD-0", files2, commit=COMMIT_B)
    with pytest.raises(ValueError, match="revision="):
        SequoiaRegressor.from_pretrained("gevaertlab/sequoia-coad-0", cache_dir=cache)
    second = SequoiaRegressor.from_pretrained(
        "gevaertlab/sequoia-coad-0", cache_dir=cache, revision=COMMIT_B[:8]
    )
    with torch.no_grad():
        ref2 = reference_forward(W2, cfg, torch.from_numpy(np.stack(bags))).numpy()
    np.testing.assert_allclose(second.predict(bags), ref2, atol=1e-5)


def test_fold_ensemble_is_the_mean_of_folds(tmp_path):
    cache = tmp_path / "hub"
    refs, bags = [], cluster_bags()
    for fold in range(2):
        cfg, W = write_checkpoint(tmp_path / f"f{fold}", seed=fold)
        files = {p.name: p.read_bytes() for p in (tmp_path / f"f{fold}").iterdir()}
        make_cached_repo(cache, f"models--gevaertlab--sequoia-coad-{fold}", files, ref="main")
        with torch.no_grad():
            refs.append(reference_forward(W, cfg, torch.from_numpy(np.stack(bags))).numpy())
    ens = load_sequoia("coad", folds=[0, 1], cache_dir=cache)
    assert isinstance(ens, FoldEnsembleRegressor) and len(ens.estimators_) == 2
    np.testing.assert_allclose(ens.predict(bags), np.mean(refs, axis=0), atol=1e-5)
    assert ens.transform(bags).shape == (4, 16)
    assert ens.get_feature_names_out()[8].startswith("fold1_")
    assert ens.predict_tiles(bags[0], ["G0", "G1"]).shape == (10,)
    # Under clone the folds would be unfitted: FrozenEstimator keeps them.
    frozen = clone(FrozenEstimator(ens))
    np.testing.assert_allclose(frozen.predict(bags), ens.predict(bags))
    with pytest.raises(ValueError, match="not fitted.*FrozenEstimator"):
        clone(ens).fit()
    with pytest.raises(ValueError, match="released no models for cancer type 'xyz'"):
        load_sequoia("xyz")


def test_missing_checkpoint_and_missing_genes_get_one_line_errors(tmp_path):
    with pytest.raises(WeightsNotFoundError) as err:
        load_sequoia("coad", cache_dir=tmp_path / "empty")
    message = str(err.value)
    assert "gevaertlab/sequoia-coad-0" in message and "hf download" in message
    assert "\n" not in message
    write_checkpoint(tmp_path / "nogenes", genes=False)
    with pytest.raises(ValueError, match="no gene list .*gene_list.csv") as err:
        SequoiaRegressor.from_pretrained(tmp_path / "nogenes")
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="holds 3 gene names but .* 5 outputs"):
        SequoiaRegressor.from_pretrained(tmp_path / "nogenes", genes=["A", "B", "C"])
    # Without a gene file in the folder, genes= labels the outputs.
    named = SequoiaRegressor.from_pretrained(tmp_path / "nogenes", genes=list("ABCDE"))
    assert list(named.gene_names_) == list("ABCDE")
    # A pickle is never loaded; safetensors is required.
    (tmp_path / "nogenes" / "model.safetensors").rename(tmp_path / "nogenes" / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickle.*not loaded"):
        SequoiaRegressor.from_pretrained(tmp_path / "nogenes", genes=list("ABCDE"))


def test_weights_and_configs_of_another_architecture_are_refused(tmp_path):
    cfg, W = write_checkpoint(tmp_path / "a")
    W.pop("transformer.layers.1.0.projection.bias")
    W["extra.weight"] = torch.zeros(2)
    safetensors_torch.save_file(W, tmp_path / "a" / "model.safetensors")
    with pytest.raises(ValueError, match="1 missing tensors .*projection.bias.*1 unexpected"):
        SequoiaRegressor.from_pretrained(tmp_path / "a")
    write_checkpoint(tmp_path / "b")
    config = json.loads((tmp_path / "b" / "config.json").read_text())
    (tmp_path / "b" / "config.json").write_text(json.dumps({**config, "dropout": 0.1}))
    with pytest.raises(ValueError, match="unknown keys \\['dropout'\\]"):
        SequoiaRegressor.from_pretrained(tmp_path / "b")


def test_wrong_features_get_one_line_errors(tmp_path):
    write_checkpoint(tmp_path / "c")
    model = SequoiaRegressor.from_pretrained(
        tmp_path / "c", feature_spec={"encoder": "uni", "n_features": 8, "mpp": 0.5}
    )
    meta = {"backbone": "resnet50", "super_tiles": 10, "super_tiles_on": "features"}
    wrong = [Bag(b, meta=meta, slide_id="TCGA-1") for b in cluster_bags(n=1)]
    with pytest.raises(ValueError, match="encoder 'uni' but bag 0 \\(slide 'TCGA-1'\\)") as err:
        model.predict(wrong)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="takes 8 features per tile \\(uni\\) but bag 0 has 6"):
        model.predict(cluster_bags(n=1, d=6))
    with pytest.raises(ValueError, match="has 7 tokens; .*exactly 10.*cluster_on='features'"):
        model.predict([np.zeros((7, 8), np.float32)])
    by_xy = [Bag(b, meta={"super_tiles_on": "coords"}) for b in cluster_bags(n=1)]
    with pytest.raises(ValueError, match="clustered by position"):
        model.transform(by_xy)
    # The released checkpoints' spec: UNI, published weights, at SEQUOIA's resolution.
    assert SEQUOIA_FEATURE_SPEC["encoder"] == "uni" and SEQUOIA_FEATURE_SPEC["n_features"] == 1024


def test_pipeline_from_tile_bags(tmp_path):
    write_checkpoint(tmp_path / "p")
    model = SequoiaRegressor.from_pretrained(tmp_path / "p")
    rng = np.random.default_rng(0)
    tiles = [Bag(rng.normal(size=(40, 8)).astype(np.float32), slide_id=f"s{i}") for i in range(3)]
    st = SuperTiles(n_clusters=10, cluster_on="features", cluster_order="kmeans", random_state=0)
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(st, FrozenEstimator(model))
    assert pipe.predict(tiles).shape == (3, 5)
    small = [Bag(rng.normal(size=(6, 8)).astype(np.float32), slide_id="tiny")]
    with pytest.raises(ValueError, match="slide 'tiny'\\) has 6 tokens"):
        pipe.predict(small)


# -- the trainable head ---------------------------------------------------------------------
def _task(n=30, d=8, seed=0):
    bags = random_bags(n, n_features=d, min_tiles=4, max_tiles=25, seed=seed)
    y = np.array([[b[:, 0].mean(), b[:, 1].mean() - b[:, 2].mean()] for b in bags])
    return bags, y


FAST = dict(depth=1, n_heads=2, local_size=8, summary_size=8, combine_size=8, max_epochs=15)


def test_head_learns_and_is_reproducible(tmp_path):
    bags, y = _task()
    model = SequoiaRegressor(**FAST, random_state=0).fit(bags, y)
    again = clone(model).fit(bags, y)
    np.testing.assert_array_equal(model.predict(bags), again.predict(bags))
    assert model.score(bags, y) > 0.3  # after one epoch: 0.23
    assert model.history_["train_loss"].iloc[-1] < model.history_["train_loss"].iloc[0]
    assert model.best_epoch_ >= 1 and model.history_["kept"].sum() == 1
    # Batches do not leak between bags of different sizes.
    np.testing.assert_allclose(model.predict(bags[:3]), model.predict(bags)[:3], atol=1e-5)
    np.testing.assert_allclose(
        model.predict_tiles(bags[0]).mean(0), model.predict(bags)[0], atol=1e-5
    )
    assert model.transform(bags).shape == (30, 8)
    # Pickle (and skops) round trips keep predictions; the module is saved as arrays.
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict(bags), model.predict(bags))
    pytest.importorskip("skops")
    from he2rna_sklearn.persistence import load_model, save_model

    loaded = load_model(save_model(FoldEnsembleRegressor([model]).fit(), tmp_path / "m.skops"))
    np.testing.assert_array_equal(loaded.predict(bags), model.predict(bags))


def test_head_records_and_checks_its_feature_spec():
    bags, y = _task()
    meta = {"backbone": "resnet18", "weights": "random-init(seed=0)", "mpp": 0.5, "tile_size": 224}
    tagged = [Bag(b, meta=meta) for b in bags]
    model = SequoiaRegressor(**FAST, validation_fraction=None, random_state=0).fit(tagged, y)
    assert model.feature_spec_["encoder"] == "resnet18" and model.feature_spec_["n_features"] == 8
    other = [Bag(b, meta=dict(meta, backbone="uni")) for b in bags[:2]]
    with pytest.raises(ValueError, match="encoder 'resnet18'"):
        model.predict(other)


def test_head_with_positions_needs_equal_bags_and_groups_split_by_patient():
    bags = cluster_bags(n=12, k=10)
    y = np.array([b[:, 0].mean() for b in bags])
    groups = np.repeat(np.arange(6), 2)
    model = SequoiaRegressor(**FAST, n_positions=10, random_state=0).fit(bags, y, groups=groups)
    assert model.predict(bags).shape == (12,)
    assert model.module_.pos_emb1D.shape == (10, 8)
    with pytest.raises(ValueError, match="exactly 10"):
        SequoiaRegressor(**FAST, n_positions=10).fit(bags + [np.zeros((4, 8))], np.r_[y, 0])


@pytest.mark.parametrize(
    "check",
    [
        "check_estimator_cloneable",
        "check_no_attributes_set_in_init",
        "check_parameters_default_constructible",
        "check_get_params_invariance",
        "check_set_params",
        "check_do_not_raise_errors_in_init_or_set_params",
        "check_mixin_order",
        "check_estimators_unfitted",
    ],
)
@pytest.mark.parametrize(
    "estimator", [SequoiaRegressor(), FoldEnsembleRegressor([])], ids=lambda e: type(e).__name__
)
def test_sklearn_checks(check, estimator):
    getattr(ec, check)(type(estimator).__name__, estimator)


def test_head_standardizes_features_inside_the_module():
    """standardize=True z-scores tiles with training statistics kept in the module, so an
    affine change of the features' units changes nothing."""
    bags, y = _task(n=20)
    params = dict(FAST, max_epochs=5, validation_fraction=None, random_state=0)
    model = SequoiaRegressor(**params).fit(bags, y)
    shifted = [b * 100.0 + 5.0 for b in bags]
    other = SequoiaRegressor(**params).fit(shifted, y)
    np.testing.assert_allclose(other.predict(shifted), model.predict(bags), atol=1e-3)
    assert model.module_.config["standardize_input"]
    np.testing.assert_allclose(
        other.module_.input_mean.numpy(), model.module_.input_mean.numpy() * 100 + 5, rtol=1e-3
    )
    raw = SequoiaRegressor(**params, standardize=False).fit(bags, y)
    assert "input_mean" not in raw.module_.state_dict()
