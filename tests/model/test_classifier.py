import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, StratifiedGroupKFold

from he2rna_sklearn import HE2RNAClassifier, HE2RNARegressor

from ..conftest import random_bags

FAST = dict(hidden_layer_sizes=(16,), max_epochs=10, validation_fraction=None, random_state=0)


def _msi_like(n_bags, seed, n_classes=2):
    """Label k has 3 + k marker tiles among 30-60; label 0 has none."""
    rng = np.random.default_rng(seed)
    bags, y = [], []
    for i in range(n_bags):
        label = i % n_classes
        n = int(rng.integers(30, 60))
        x = rng.normal(size=(n, 8)).astype(np.float32)
        x[: 4 * label, 0] += 3.0
        bags.append(x[rng.permutation(n)])
        y.append(["MSS", "MSI-H", "MSI-L"][label])
    return bags, np.array(y)


@pytest.fixture(scope="module")
def data():
    return _msi_like(40, seed=0)


@pytest.fixture(scope="module")
def fitted(data):
    return HE2RNAClassifier(**FAST).fit(*data)


def test_learns_planted_label():
    X, y = _msi_like(80, seed=1)
    X_test, y_test = _msi_like(40, seed=2)
    clf = HE2RNAClassifier(
        hidden_layer_sizes=(16,), lr=3e-3, max_epochs=40, validation_fraction=None, random_state=0
    ).fit(X, y)
    proba = clf.predict_proba(X_test)[:, list(clf.classes_).index("MSI-H")]
    assert roc_auc_score(y_test == "MSI-H", proba) >= 0.9
    assert clf.score(X_test, y_test) >= 0.8


def test_binary_outputs_agree(fitted, data):
    bags, _ = data
    proba = fitted.predict_proba(bags)
    assert proba.shape == (40, 2) and np.allclose(proba.sum(1), 1)
    assert list(fitted.classes_) == ["MSI-H", "MSS"]
    margin = fitted.decision_function(bags)
    assert margin.shape == (40,)
    np.testing.assert_allclose(1 / (1 + np.exp(-margin)), proba[:, 1], rtol=1e-5)
    np.testing.assert_array_equal(fitted.predict(bags), fitted.classes_[(margin > 0).astype(int)])
    assert fitted.predict_tiles(bags[0]).shape == (bags[0].shape[0], 2)


def test_multiclass():
    X, y = _msi_like(30, seed=3, n_classes=3)
    clf = HE2RNAClassifier(**FAST).fit(X, y)
    assert list(clf.classes_) == ["MSI-H", "MSI-L", "MSS"]
    assert clf.predict_proba(X).shape == (30, 3) and clf.decision_function(X).shape == (30, 3)
    assert set(clf.predict(X)) <= set(clf.classes_)


def test_class_weight_balanced_and_bias(data):
    bags, y = data
    y = y.copy()
    y[:30] = "MSS"  # 35 MSS vs 5 MSI-H
    clf = HE2RNAClassifier(**{**FAST, "max_epochs": 1}, class_weight="balanced").fit(bags, y)
    weight = clf.class_weight_
    np.testing.assert_allclose(weight, [40 / (2 * 5), 40 / (2 * 35)], rtol=1e-6)
    plain = HE2RNAClassifier(**{**FAST, "max_epochs": 1, "lr": 1e-12}).fit(bags, y)
    bias = plain.module_.output.bias.detach().numpy()
    np.testing.assert_allclose(bias, np.log([5 / 40, 35 / 40]), rtol=1e-4)


def test_init_from_regressor_and_freeze(data):
    bags, y = data
    expr = np.column_stack([[b[:, 0].max() for b in bags], [b[:, 1].mean() for b in bags]])
    reg = HE2RNARegressor(
        tile_types=None,
        hidden_layer_sizes=(16, 8),
        max_epochs=3,
        validation_fraction=None,
        random_state=0,
    ).fit(bags, expr)
    src = reg.module_
    frozen = HE2RNAClassifier(
        init_from=reg, freeze="hidden", max_epochs=5, validation_fraction=None, random_state=0
    ).fit(bags, y)
    mod = frozen.module_
    for a, b in zip(mod.hidden, src.hidden):
        if hasattr(a, "weight"):
            assert np.array_equal(a.weight.detach().numpy(), b.weight.detach().numpy())
    np.testing.assert_array_equal(mod.input_scale.numpy(), src.input_scale.numpy())
    assert mod.embedding_size == 8 and mod.output.out_features == 2
    first_only = HE2RNAClassifier(
        init_from=reg, freeze=1, max_epochs=5, lr=1e-2, validation_fraction=None, random_state=0
    ).fit(bags, y)
    m = first_only.module_
    assert np.array_equal(
        m.hidden[0].weight.detach().numpy(), src.hidden[0].weight.detach().numpy()
    )
    assert not np.array_equal(
        m.hidden[3].weight.detach().numpy(), src.hidden[3].weight.detach().numpy()
    )
    with pytest.raises(ValueError, match="freeze=3"):
        HE2RNAClassifier(init_from=reg, freeze=3, max_epochs=1).fit(bags, y)


def test_init_from_under_grid_search_needs_frozen_estimator(data):
    bags, y = data
    reg = HE2RNARegressor(
        tile_types=None,
        hidden_layer_sizes=(16,),
        max_epochs=2,
        validation_fraction=None,
        random_state=0,
    ).fit(bags, [b[:, 0].max() for b in bags])
    groups = np.arange(40) // 2
    cv = StratifiedGroupKFold(2)
    with pytest.raises(ValueError, match="FrozenEstimator"):
        GridSearchCV(
            HE2RNAClassifier(init_from=reg, **FAST), {"lr": [1e-3]}, cv=cv, error_score="raise"
        ).fit(bags, y, groups=groups)
    search = GridSearchCV(
        HE2RNAClassifier(init_from=FrozenEstimator(reg), **FAST),
        {"freeze": ["none", "hidden"]},
        cv=cv,
        scoring="roc_auc",
    )
    search.fit(bags, y, groups=groups)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_invariances(fitted, data):
    bags, y = data
    np.testing.assert_array_equal(
        clone(fitted).fit(bags, y).predict_proba(bags), fitted.predict_proba(bags)
    )
    loaded = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(loaded.predict_proba(bags), fitted.predict_proba(bags))
    full = fitted.predict_proba(bags)
    np.testing.assert_allclose(fitted.predict_proba(bags[:7]), full[:7], rtol=1e-5, atol=1e-7)
    small = random_bags(6, n_features=8, min_tiles=1, max_tiles=3, seed=9)
    assert np.isfinite(fitted.predict_proba(small)).all()


def test_errors(data):
    bags, y = data
    with pytest.raises(ValueError, match="single class"):
        HE2RNAClassifier(**FAST).fit(bags, np.array(["MSS"] * 40))
    with pytest.raises(ValueError, match="40 bags but y has 39"):
        HE2RNAClassifier(**FAST).fit(bags, y[:39])
    with pytest.raises(ValueError, match="empty"):
        HE2RNAClassifier(**FAST).fit(bags[:2] + [np.zeros((0, 8))], y[:3])
    with pytest.raises(ValueError, match="expected 8"):
        HE2RNAClassifier(**FAST).fit(bags, y).predict([np.zeros((3, 5))])


@pytest.mark.parametrize("missing", [np.nan, None])
def test_missing_labels_are_refused(data, missing):
    # Issue 13: NaN or None labels became a third class.
    bags, y = data
    labels = y.astype(object)
    labels[[3, 7]] = missing
    with pytest.raises(ValueError, match=r"2 missing labels \(NaN or None\) at rows \[3, 7\]"):
        HE2RNAClassifier(**FAST).fit(bags, labels)
    numeric = (y == "MSI-H").astype(float)
    numeric[5] = np.nan
    with pytest.raises(ValueError, match=r"rows \[5\]"):
        HE2RNAClassifier(**FAST).fit(bags, numeric)


@pytest.mark.parametrize("blank", ["", "   ", "\t"])
def test_empty_or_blank_labels_are_refused(data, blank):
    # Issue 18: an empty-string label became a class.
    bags, y = data
    labels = y.astype(object)
    labels[[2, 9]] = blank
    with pytest.raises(ValueError, match=r"2 empty or blank labels at rows \[2, 9\]") as err:
        HE2RNAClassifier(**FAST).fit(bags, labels)
    assert "\n" not in str(err.value)


def test_continuous_or_mixed_labels_are_refused(data):
    # Issue 18: continuous float labels became a 40-class model, where scikit-learn raises.
    bags, _ = data
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="continuous.*use HE2RNARegressor") as err:
        HE2RNAClassifier(**FAST).fit(bags, rng.random(40))
    assert "\n" not in str(err.value)
    mixed = np.array(["MSS", 1] * 20, dtype=object)
    with pytest.raises(ValueError, match=r"mixes labels of kinds \['number', 'string'\]"):
        HE2RNAClassifier(**FAST).fit(bags, mixed)
    # Integer classes, also in an object column (as pandas may give), are accepted.
    ints = np.array([0, 1] * 20, dtype=object)
    fitted = HE2RNAClassifier(**dict(FAST, max_epochs=1)).fit(bags, ints)
    assert fitted.classes_.tolist() == [0, 1]


def test_init_from_rebuilds_the_source_architecture(data):
    # Issue 13: the classifier used its own activation instead of the source's.
    bags, y = data
    expr = np.column_stack([[b[:, 0].max() for b in bags], [b[:, 1].mean() for b in bags]])
    reg = HE2RNARegressor(
        tile_types=None,
        hidden_layer_sizes=(12,),
        activation="tanh",
        max_epochs=2,
        validation_fraction=None,
    ).fit(bags, expr)
    clf = HE2RNAClassifier(init_from=reg, max_epochs=1, validation_fraction=None).fit(bags, y)
    assert clf.module_.config["activation"] == "tanh"
    assert clf.module_.config["hidden_layer_sizes"] == (12,)
    # same hidden layers, so the same embedding before any update of the frozen layers
    frozen = HE2RNAClassifier(init_from=reg, freeze="hidden", max_epochs=1).fit(bags, y)
    np.testing.assert_allclose(frozen.transform(bags), reg.transform(bags), rtol=1e-5)
