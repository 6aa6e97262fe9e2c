"""save_pretrained / from_pretrained: identical predictions, and no pickle in the folder."""

import json
import warnings

import numpy as np
import pytest

from he2rna_sklearn import Bag, HE2RNAClassifier, HE2RNARegressor, SequoiaRegressor
from he2rna_sklearn.bags import check_feature_spec
from he2rna_sklearn.exceptions import WeightsNotFoundError
from he2rna_sklearn.model import from_pretrained, save_pretrained
from tests.conftest import random_bags
from tests.test_hub import COMMIT_A, make_cached_repo

pytest.importorskip("safetensors")

META = {"backbone": "resnet18", "weights": "random-init(seed=0)", "mpp": 0.5, "tile_size": 224}
# Magic bytes of pickle protocols 2-5, of zip archives (torch.save, joblib, skops) and of
# compressed pickles: none may start a file of a saved model.
PICKLE_OR_ARCHIVE = (b"\x80", b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"\x28\xb5\x2f\xfd")


def _bags(n=24, seed=0):
    return [
        Bag(b, meta=META, slide_id=f"s{i}")
        for i, b in enumerate(random_bags(n, n_features=6, min_tiles=3, max_tiles=15, seed=seed))
    ]


@pytest.fixture(scope="module")
def regressor():
    bags = _bags()
    y = np.array([[np.asarray(b)[:, 0].max(), np.asarray(b)[:, 1].mean(), 1.0] for b in bags])
    import pandas as pd

    y = pd.DataFrame(y, columns=["CD3E", "EPCAM", "FLAT"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        model = HE2RNARegressor(
            tile_types=None, hidden_layer_sizes=(8,), max_epochs=3, init="random", random_state=0
        )
        model.fit(bags, y)
    return model, bags


def assert_no_pickle(folder):
    for path in folder.iterdir():
        head = path.read_bytes()[:8]
        assert not head.startswith(PICKLE_OR_ARCHIVE), path.name
        if path.suffix == ".safetensors":  # an 8-byte header length, then a JSON header
            n = int.from_bytes(head, "little")
            json.loads(path.read_bytes()[8 : 8 + n])


def test_regressor_round_trip_is_identical_and_pickle_free(regressor, tmp_path):
    model, bags = regressor
    folder = save_pretrained(
        model,
        tmp_path / "m",
        bags=bags,
        metrics={"mean r (5-fold, by patient)": 0.314, "Holm genes": 12},
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md",
        "config.json",
        "estimator.safetensors",
        "genes.txt",
        "model.safetensors",
    ]
    assert_no_pickle(folder)
    loaded = from_pretrained(folder)
    assert type(loaded) is HE2RNARegressor
    np.testing.assert_array_equal(loaded.predict(bags), model.predict(bags))
    np.testing.assert_array_equal(loaded.transform(bags), model.transform(bags))
    np.testing.assert_array_equal(
        loaded.predict_tiles(bags[0], "CD3E"), model.predict_tiles(bags[0], "CD3E")
    )
    assert loaded.get_params() == model.get_params()
    assert list(loaded.gene_names_) == ["CD3E", "EPCAM", "FLAT"]
    assert loaded.history_.equals(model.history_)
    np.testing.assert_array_equal(loaded.y_mean_, model.y_mean_)
    assert loaded.feature_spec_ == {
        "encoder": "resnet18",
        "weights": "random-init(seed=0)",
        "n_features": 6,
        "mpp": 0.5,
        "tile_size": 224,
    }
    card = (folder / "README.md").read_text()
    assert "library_name: he2rna-sklearn" in card and "| Holm genes | 12 |" in card
    assert "| encoder | resnet18 |" in card and "3 genes" in card
    # The loaded model's spec refuses features of another encoder, in one line.
    with pytest.raises(ValueError, match="encoder 'resnet18' but bag 0") as err:
        check_feature_spec([Bag(np.zeros((2, 6)), meta={"backbone": "uni"})], loaded.feature_spec_)
    assert "\n" not in str(err.value)
    # ... and so does predict itself (issue 18), naming the slide.
    other = Bag(np.zeros((2, 6), np.float32), meta=dict(META, mpp=1.0), slide_id="X1")
    with pytest.raises(ValueError, match="0.5 µm/px but bag 0 \\(slide 'X1'\\)"):
        loaded.predict([other])
    # Saving again into the same folder replaces it; a folder of other files is refused.
    save_pretrained(loaded, folder)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="notes.txt"):
        save_pretrained(model, tmp_path / "other")


def test_through_the_hf_cache_and_missing_models(regressor, tmp_path):
    model, bags = regressor
    folder = save_pretrained(model, tmp_path / "m", bags=bags)
    files = {p.name: p.read_bytes() for p in folder.iterdir()}
    make_cached_repo(tmp_path / "hub", "models--Lab--HE2RNA-COAD", files, commit=COMMIT_A)
    loaded = from_pretrained("lab/he2rna-coad", cache_dir=tmp_path / "hub", device="cpu")
    np.testing.assert_array_equal(loaded.predict(bags), model.predict(bags))
    assert loaded.source_ == f"hf-hub:lab/he2rna-coad@{COMMIT_A[:12]}"
    assert loaded.device == "cpu"
    with pytest.raises(WeightsNotFoundError, match="hf download lab/other") as err:
        from_pretrained("lab/other", cache_dir=tmp_path / "hub")
    assert "\n" not in str(err.value)


def test_classifier_and_sequoia_head_round_trip(tmp_path):
    bags = _bags(n=20)
    labels = np.array(["MSS", "MSI-H"] * 10)
    clf = HE2RNAClassifier(hidden_layer_sizes=(4,), max_epochs=2, random_state=0)
    clf.fit(bags, labels)
    loaded = from_pretrained(save_pretrained(clf, tmp_path / "clf"))
    np.testing.assert_array_equal(loaded.predict_proba(bags), clf.predict_proba(bags))
    np.testing.assert_array_equal(loaded.classes_, clf.classes_)
    assert not (tmp_path / "clf" / "genes.txt").exists()
    y = np.array([np.asarray(b)[:, 0].mean() for b in bags])
    head = SequoiaRegressor(
        depth=1,
        n_heads=2,
        local_size=4,
        summary_size=4,
        combine_size=4,
        max_epochs=3,
        random_state=0,
    ).fit(bags, y)
    again = from_pretrained(save_pretrained(head, tmp_path / "seq"))
    np.testing.assert_array_equal(again.predict(bags), head.predict(bags))
    assert again.predict(bags).ndim == 1 and again.feature_spec_ == head.feature_spec_
    assert_no_pickle(tmp_path / "seq")
    assert again.source_ == str(tmp_path / "seq")
    with pytest.raises(ValueError, match="saved by he2rna-sklearn.*model.from_pretrained"):
        SequoiaRegressor.from_pretrained(tmp_path / "seq")


def test_refusals(regressor, tmp_path):
    model, bags = regressor
    with pytest.raises(ValueError, match="save_pretrained writes"):
        save_pretrained(object(), tmp_path / "x")
    folder = save_pretrained(model, tmp_path / "m")  # the spec the model recorded in fit
    assert json.loads((folder / "config.json").read_text())["feature_spec"] == {
        "encoder": "resnet18",
        "weights": "random-init(seed=0)",
        "n_features": 6,
        "mpp": 0.5,
        "tile_size": 224,
    }
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "estimator": "os.system"}))
    with pytest.raises(ValueError, match="names estimator 'os.system'"):
        from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps({**config, "format": "other"}))
    with pytest.raises(ValueError, match="not a model saved by he2rna-sklearn"):
        from_pretrained(folder)
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "genes.txt").write_text("A\nB\n")
    with pytest.raises(ValueError, match="lists 2 genes but the model has 3 outputs"):
        from_pretrained(folder)


def test_a_config_beyond_its_weights_is_refused_before_building(regressor, tmp_path, monkeypatch):
    """Issue 18: a config asking for 10**6 hidden units was built (2.7 GB) before the
    weights were compared with it; now nothing that size is allocated, in both formats."""
    from he2rna_sklearn.model._modules import HE2RNAModule
    from he2rna_sklearn.model._sequoia_modules import SequoiaModule
    from tests.model.test_sequoia import write_checkpoint
    from tests.test_torch import record_full_builds

    model, bags = regressor
    folder = save_pretrained(model, tmp_path / "m", bags=bags)
    config = json.loads((folder / "config.json").read_text())
    config["module"]["__dict__"]["hidden_layer_sizes"] = {"__tuple__": [10**6]}
    (folder / "config.json").write_text(json.dumps(config))
    built = record_full_builds(monkeypatch, HE2RNAModule)
    with pytest.raises(ValueError, match=r"hidden\.0\.weight \(8, 6\) \(the config makes "
                       r"\(1000000, 6\)\).*nothing was built") as err:  # fmt: skip
        from_pretrained(folder)
    assert "\n" not in str(err.value) and built == []
    config["module"]["__dict__"]["hidden_layer_sizes"] = {"__tuple__": [-3]}
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="the module config does not fit"):
        from_pretrained(folder)
    # A SEQUOIA checkpoint whose config.json asks for 10**6 genes beside 5-gene weights.
    write_checkpoint(tmp_path / "seq", genes=False)
    seq = json.loads((tmp_path / "seq" / "config.json").read_text())
    (tmp_path / "seq" / "config.json").write_text(json.dumps({**seq, "num_outputs": 10**6}))
    built = record_full_builds(monkeypatch, SequoiaModule)
    with pytest.raises(ValueError, match=r"linear_head\.1\.bias \(5,\) \(the config makes "
                       r"\(1000000,\)\).*nothing was built"):  # fmt: skip
        from_pretrained(tmp_path / "seq", genes=[f"G{i}" for i in range(10**6)])
    assert built == []


def test_methods_of_the_estimators_and_pipelines_of_super_tiles(regressor, tmp_path):
    """Issue 19 part 3: save_pretrained / from_pretrained as methods; a Pipeline of
    SuperTiles and a model is saved whole, so it is never fed tiles it was not fitted on."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from he2rna_sklearn import SuperTiles

    model, bags = regressor
    folder = model.save_pretrained(tmp_path / "m", metrics={"mean r": 0.3})
    config = json.loads((folder / "config.json").read_text())
    assert config["module_class"] == "HE2RNAModule" and config["steps"] == []
    loaded = HE2RNARegressor.from_pretrained(folder, device="cpu")
    np.testing.assert_array_equal(loaded.predict(bags), model.predict(bags))
    with pytest.raises(ValueError, match="holds HE2RNARegressor, not a HE2RNAClassifier"):
        HE2RNAClassifier.from_pretrained(folder)
    assert_no_pickle(folder)

    tiled = [Bag(np.asarray(b), coords=np.arange(2 * b.shape[0]).reshape(-1, 2) * 100,
                 meta=META, slide_id=b.slide_id) for b in bags]  # fmt: skip
    y = np.array([np.asarray(b)[:, 0].mean() for b in bags])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        pipe = make_pipeline(
            SuperTiles(n_clusters=3, random_state=0),
            HE2RNARegressor(
                tile_types=None,
                hidden_layer_sizes=(4,),
                max_epochs=2,
                init="random",
                random_state=0,
            ),
        ).fit(tiled, y)
    again = from_pretrained(save_pretrained(pipe, tmp_path / "p"))
    assert [name for name, _ in again.steps] == ["supertiles", "he2rnaregressor"]
    np.testing.assert_array_equal(again.predict(tiled), pipe.predict(tiled))
    card = (tmp_path / "p" / "README.md").read_text()
    assert "`SuperTiles(cluster_on='coords'" in card and "n_clusters=3" in card
    with pytest.raises(ValueError, match="another|encoder 'resnet18'"):
        again.predict([Bag(np.zeros((4, 6), np.float32), coords=np.zeros((4, 2)),
                           meta=dict(META, backbone="resnet34"))])  # fmt: skip
    with pytest.raises(ValueError, match=r"holds a Pipeline \(SuperTiles, HE2RNARegressor\)"):
        HE2RNARegressor.from_pretrained(tmp_path / "p")
    with pytest.raises(ValueError, match="step 'standardscaler' is a StandardScaler"):
        save_pretrained(make_pipeline(StandardScaler(), model), tmp_path / "s")
    # Only registered networks and steps are built.
    config = json.loads((folder / "config.json").read_text())
    for key, value, match in [
        ("module_class", "os.system", "names network 'os.system'"),
        ("steps", [{"class": "Popen", "params": {}}], "names a pipeline step 'Popen'"),
    ]:
        (folder / "config.json").write_text(json.dumps({**config, key: value}))
        with pytest.raises(ValueError, match=match):
            from_pretrained(folder)


def test_tile_type_regressor_round_trip(regressor, tmp_path):
    """The default network (tile types) is written and read like the paper's."""
    _, bags = regressor
    y = np.array([[np.asarray(b)[:, 0].max(), np.asarray(b)[:, 1].mean()] for b in bags])
    model = HE2RNARegressor(tile_types=4, max_epochs=2, random_state=0).fit(bags, y)
    folder = model.save_pretrained(tmp_path / "types")
    config = json.loads((folder / "config.json").read_text())
    assert config["module_class"] == "TileTypeModule"
    loaded = HE2RNARegressor.from_pretrained(folder)
    np.testing.assert_array_equal(loaded.predict(bags), model.predict(bags))
    np.testing.assert_array_equal(loaded.predict_tiles(bags[0]), model.predict_tiles(bags[0]))
    assert_no_pickle(folder)
