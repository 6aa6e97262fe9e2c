"""Models are saved and loaded with skops and an explicit trusted-type list: no code runs."""

import os
import pickle

import numpy as np
import pytest
from sklearn.linear_model import RidgeCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from he2rna_sklearn import Bag, SuperTiles
from he2rna_sklearn.persistence import UntrustedModelError, load_model, save_model

skops_io = pytest.importorskip("skops.io")


class _RunsCode:
    """Would create ``flag`` when unpickled."""

    def __init__(self, flag):
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


@pytest.fixture
def ridge():
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 5)), rng.normal(size=(30, 3))
    return make_pipeline(StandardScaler(), RidgeCV()).fit(X, Y), X


def test_round_trip_keeps_predictions_and_metadata(ridge, tmp_path):
    model, X = ridge
    path = save_model(model, tmp_path / "m.skops", metadata={"genes": ["A", "B", "C"]})
    assert os.listdir(tmp_path) == ["m.skops"]
    loaded, meta = load_model(path, return_metadata=True)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert meta["genes"] == ["A", "B", "C"] and "package_version" in meta


def test_our_own_steps_are_trusted(tmp_path):
    rng = np.random.default_rng(0)
    bags = [
        Bag(rng.normal(size=(20, 4)).astype(np.float32), coords=rng.integers(0, 900, (20, 2)))
        for _ in range(3)
    ]
    steps = SuperTiles(n_clusters=4, random_state=0).fit(bags)
    loaded = load_model(save_model(steps, tmp_path / "st.skops"))
    for a, b in zip(loaded.transform(bags), steps.transform(bags)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("suffix", [".joblib", ".skops", ".pkl"])
def test_a_pickle_is_never_loaded(tmp_path, suffix):
    flag = tmp_path / "ran"
    path = tmp_path / f"evil{suffix}"
    path.write_bytes(pickle.dumps({"model": _RunsCode(flag)}))
    with pytest.raises(UntrustedModelError, match="pickle or joblib file"):
        load_model(path)
    assert not flag.exists()


def test_a_skops_file_with_untrusted_types_is_refused(ridge, tmp_path):
    flag = tmp_path / "ran"
    model, _ = ridge
    path = tmp_path / "evil.skops"
    skops_io.dump(
        {"format": "he2rna-sklearn model", "model": model, "extra": _RunsCode(flag)}, path
    )
    with pytest.raises(UntrustedModelError, match="outside the trusted list.*_RunsCode"):
        load_model(path)
    assert not flag.exists()


def test_files_that_are_not_models(ridge, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello\n")
    with pytest.raises(UntrustedModelError, match="notes.txt' is not a model.*not a skops file"):
        load_model(text)
    (tmp_path / "empty.skops").write_bytes(b"")
    with pytest.raises(UntrustedModelError, match="empty"):
        load_model(tmp_path / "empty.skops")
    other = tmp_path / "other.skops"
    skops_io.dump({"a": 1}, other)  # a skops file, not ours
    with pytest.raises(UntrustedModelError, match="another program"):
        load_model(other)
    with pytest.raises(FileNotFoundError, match="absent.skops"):
        load_model(tmp_path / "absent.skops")
    with pytest.raises(IsADirectoryError):
        load_model(tmp_path)


def test_save_leaves_no_temporary_on_failure(ridge, tmp_path, monkeypatch):
    def dump_then_fail(obj, file):
        file.write_bytes(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(skops_io, "dump", dump_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_model(ridge[0], tmp_path / "m.skops")
    assert os.listdir(tmp_path) == []


class _Custom:
    """A type load_model does not trust."""

    def predict(self, X):
        return X


def test_a_model_that_could_not_be_loaded_is_not_saved(tmp_path):
    with pytest.raises(ValueError, match="does not trust.*_Custom"):
        save_model(make_pipeline(StandardScaler(), _Custom()), tmp_path / "m.skops")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def bags_and_targets():
    rng = np.random.default_rng(0)
    bags = [
        Bag(rng.normal(size=(12, 4)).astype(np.float32), coords=rng.integers(0, 900, (12, 2)))
        for _ in range(8)
    ]
    return bags, rng.normal(size=(8, 2))


FAST = dict(max_epochs=2, validation_fraction=None, random_state=0)
TYPES = {**FAST, "tile_types": 4}  # the regressor's tile-type network, at toy size
MLP = {**FAST, "tile_types": None, "hidden_layer_sizes": (4,)}  # the paper's network


@pytest.mark.filterwarnings("ignore:HE2RNA")
@pytest.mark.parametrize(
    "kind",
    [
        "regressor",
        "mlp",
        "supertiles",
        "baseline",
        "codebook",
        "classifier",
        "embedder",
        "mean_features",
    ],
)
def test_every_saved_model_of_the_package_loads(bags_and_targets, tmp_path, kind):
    from he2rna_sklearn import HE2RNAClassifier, HE2RNAEmbedder, HE2RNARegressor
    from he2rna_sklearn.bags import TileCodebook
    from he2rna_sklearn.evaluation import tuned_linear_baseline
    from he2rna_sklearn.model import MeanFeatureEmbedder

    bags, Y = bags_and_targets
    if kind == "regressor":
        model = make_pipeline(HE2RNARegressor(**TYPES)).fit(bags, Y)
    elif kind == "mlp":
        model = make_pipeline(HE2RNARegressor(**MLP)).fit(bags, Y)
    elif kind == "supertiles":
        model = make_pipeline(SuperTiles(3, random_state=0), HE2RNARegressor(**TYPES)).fit(bags, Y)
    elif kind == "baseline":
        model = tuned_linear_baseline().fit(bags, Y)
    elif kind == "codebook":
        model = make_pipeline(TileCodebook(3, random_state=0), RidgeCV()).fit(bags, Y)
    elif kind == "classifier":
        model = HE2RNAClassifier(**FAST, hidden_layer_sizes=(4,)).fit(bags, np.arange(8) % 2)
    elif kind == "mean_features":
        model = make_pipeline(
            MeanFeatureEmbedder(hidden_layer_sizes=(6, 3), max_epochs=3, random_state=0),
            StandardScaler(),
            RidgeCV(),
        ).fit(bags, np.arange(8.0), meanfeatureembedder__expression=Y)
    else:
        model = HE2RNAEmbedder(HE2RNARegressor(**TYPES)).fit(bags, expression=Y)
    loaded = load_model(save_model(model, tmp_path / "m.skops"))
    method = "transform" if kind == "embedder" else "predict"
    np.testing.assert_allclose(getattr(loaded, method)(bags), getattr(model, method)(bags))


def _set_hidden(path, size):
    """Rewrite a saved model's module config to ask for ``size`` hidden units, as a
    crafted file would (the weights stay small)."""
    import json
    import zipfile

    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    schema = json.loads(members["schema.json"])

    def walk(node):
        if isinstance(node, dict):
            if "hidden_layer_sizes" in node and "n_features" in node:
                unit = node["hidden_layer_sizes"]["content"][0]
                unit["content"], unit["__id__"] = str(size), 1  # skops memoizes by __id__
                return True
            return any(walk(v) for v in node.values())
        return isinstance(node, list) and any(walk(v) for v in node)

    assert walk(schema)
    members["schema.json"] = json.dumps(schema).encode()
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.filterwarnings("ignore:HE2RNA")
def test_a_config_beyond_its_weights_is_refused_before_building(
    bags_and_targets, tmp_path, monkeypatch
):
    """Issue 18: a file whose config asked for 10**6 hidden units used 2.7 GB before it was
    refused; now the config is checked against the arrays first (nothing is allocated)."""
    from he2rna_sklearn import HE2RNARegressor
    from he2rna_sklearn.model._modules import HE2RNAModule
    from tests.test_torch import record_full_builds

    bags, Y = bags_and_targets
    path = save_model(HE2RNARegressor(**MLP).fit(bags, Y), tmp_path / "m.skops")
    _set_hidden(path, 10**6)
    built = record_full_builds(monkeypatch, HE2RNAModule)
    match = r"not loaded: .*hidden\.0\.bias \(4,\) \(the config makes \(1000000,\)\).*nothing"
    with pytest.raises(UntrustedModelError, match=match) as err:
        load_model(path)
    assert "\n" not in str(err.value) and built == []
