import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn import config_context
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, GroupKFold
from sklearn.pipeline import make_pipeline

from he2rna_sklearn import Bag, HE2RNARegressor, SuperTiles
from he2rna_sklearn.metrics import pearson_per_gene
from he2rna_sklearn.model import KS_SUPER_TILES

from ..conftest import planted_fraction, random_bags

# The paper's network (tile_types=None) at toy size: most tests here are about it; the
# tile-type network has its own tests (test_tile_types.py) and shares the generic ones below.
FAST = dict(
    tile_types=None,
    hidden_layer_sizes=(16,),
    max_epochs=8,
    validation_fraction=None,
    random_state=0,
)
TYPES = dict(tile_types=8, max_epochs=8, validation_fraction=None, random_state=0)


@pytest.fixture(scope="module")
def data():
    bags = random_bags(30, n_features=6, seed=1)
    y = np.column_stack([[b[:, 0].max() for b in bags], [b[:, 1].mean() for b in bags]])
    return bags, y


@pytest.fixture(scope="module")
def fitted(data):
    bags, y = data
    return HE2RNARegressor(**FAST).fit(bags, y)


@pytest.fixture(scope="module", params=["mlp", "tile_types"])
def any_fitted(request, data):
    """Both networks, for the checks every estimator must pass."""
    bags, y = data
    return HE2RNARegressor(**(FAST if request.param == "mlp" else TYPES)).fit(bags, y)


def test_learns_planted_fraction_signal_at_defaults():
    # Issue 10: r >= 0.9 on a fraction-type gene without hand-picked ks.
    X, y = planted_fraction(200, seed=0)
    X_test, y_test = planted_fraction(80, seed=1)
    # (max_epochs bounds the test's time: on this easy gene the validation r creeps up by
    # 1e-4 for 200 epochs; every other parameter is at its default)
    model = HE2RNARegressor(max_epochs=30, random_state=0).fit(X, y)
    r = pearson_per_gene(y_test, model.predict(X_test))[0]
    assert r >= 0.9
    assert model.train_sd_ratio_ > 0.5  # not shrunk to the mean


def test_shapes(fitted, data):
    bags, y = data
    assert fitted.predict(bags).shape == (30, 2)
    assert fitted.transform(bags).shape == (30, 16)
    assert fitted.predict_tiles(bags[3]).shape == (bags[3].shape[0], 2)
    assert fitted.n_features_in_ == 6 and fitted.n_outputs_ == 2
    assert list(fitted.gene_names_) == ["gene_0", "gene_1"]
    assert len(fitted.history_) == 8 and fitted.best_epoch_ == 8


def test_predict_is_topk_of_tile_scores(fitted, data):
    bags, _ = data
    tiles = fitted.predict_tiles(bags[0])
    srt = -np.sort(-tiles, axis=0)
    ks = fitted.module_.ks
    top_k = np.mean([srt[: min(k, len(srt))].mean(0) for k in ks], axis=0)
    # the ridge warm start chose mean pooling for some genes: they mix in the tile mean
    w = fitted.module_.mean_weight.numpy()
    expected = w * tiles.mean(0) + (1 - w) * top_k
    np.testing.assert_allclose(fitted.predict(bags[:1])[0], expected, rtol=1e-4, atol=1e-5)


def test_same_seed_same_model_and_clone(any_fitted, data):
    bags, y = data
    again = clone(any_fitted).fit(bags, y)
    np.testing.assert_array_equal(again.predict(bags), any_fitted.predict(bags))
    other = clone(any_fitted).set_params(random_state=1).fit(bags, y)
    assert not np.allclose(other.predict(bags), any_fitted.predict(bags))


def test_pickle_roundtrip(any_fitted, data):
    bags, _ = data
    loaded = pickle.loads(pickle.dumps(any_fitted))
    np.testing.assert_array_equal(loaded.predict(bags), any_fitted.predict(bags))
    np.testing.assert_array_equal(loaded.transform(bags), any_fitted.transform(bags))


def test_no_leak_across_padded_batch(any_fitted, data):
    bags, _ = data
    full = any_fitted.predict(bags)
    for k in (1, 5, 17):
        np.testing.assert_allclose(any_fitted.predict(bags[:k]), full[:k], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(any_fitted.predict(bags[::-1]), full[::-1], rtol=1e-5, atol=1e-6)


def test_bags_smaller_than_k_work():
    bags = random_bags(12, n_features=4, min_tiles=1, max_tiles=4, seed=2)
    y = np.array([b.sum() for b in bags])
    model = HE2RNARegressor(**{**FAST, "ks": (1, 50, 100)}).fit(bags, y)
    assert np.isfinite(model.predict(bags)).all()


def test_input_containers_agree(any_fitted):
    bags = random_bags(6, n_features=6, min_tiles=7, max_tiles=8, seed=3)
    equal = np.stack(bags)  # all bags have 7 tiles: a 3-D array
    obj = np.empty(len(bags), dtype=object)
    obj[:] = [Bag(b) for b in bags]
    ref = any_fitted.predict(bags)
    for X in (tuple(bags), obj, equal):
        np.testing.assert_allclose(any_fitted.predict(X), ref, rtol=1e-6)


def test_dataframe_and_1d_targets(data):
    bags, y = data
    df = pd.DataFrame(y, columns=["CD3E", "EPCAM"])
    model = HE2RNARegressor(**FAST).fit(bags, df)
    assert list(model.gene_names_) == ["CD3E", "EPCAM"]
    single = HE2RNARegressor(**FAST).fit(bags, y[:, 0])
    assert single.predict(bags).shape == (30,)
    assert -1 <= single.score(bags, y[:, 0]) <= 1


def test_standardize_false_starts_bias_at_gene_means(data):
    # The paper's initialisation: random weights, output bias at each gene's training mean.
    bags, y = data
    params = {**FAST, "max_epochs": 1, "lr": 1e-12, "standardize": False, "init": "random"}
    model = HE2RNARegressor(**params)
    model.fit(bags, y + 10)
    bias = model.module_.output.bias.detach().numpy()
    np.testing.assert_allclose(bias, (y + 10).mean(0), rtol=1e-5)


def test_transform_set_output_pandas(fitted, data):
    bags, _ = data
    out = clone(fitted).set_output(transform="pandas").fit(*data).transform(bags)
    assert isinstance(out, pd.DataFrame) and out.shape == (30, 16)
    assert list(out.columns[:2]) == ["he2rnaregressor0", "he2rnaregressor1"]


def test_errors(fitted, data):
    bags, y = data
    with pytest.raises(ValueError, match="empty"):
        HE2RNARegressor(**FAST).fit(bags[:3] + [np.zeros((0, 6))], y[:4])
    nan = [b.copy() for b in bags]
    nan[4][0, 0] = np.nan
    with pytest.raises(ValueError, match="bag 4 .*NaN"):
        HE2RNARegressor(**FAST).fit(nan, y)
    with pytest.raises(ValueError, match="expected 6 as seen in fit"):
        fitted.predict([np.zeros((3, 5))])
    with pytest.raises(ValueError, match="30 bags but y has 29 rows"):
        HE2RNARegressor(**FAST).fit(bags, y[:29])
    y_nan = y.copy()
    y_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"rows \[2\] and genes \['gene_1'\]"):
        HE2RNARegressor(**FAST).fit(bags, y_nan)
    with pytest.raises(ValueError, match="validation_fraction=None"):
        HE2RNARegressor(validation_fraction=0.1).fit(bags[:3], y[:3])


def test_early_stopping_restores_best(data):
    bags, y = data
    model = HE2RNARegressor(max_epochs=60, patience=3, validation_fraction=0.2, random_state=0).fit(
        bags, y
    )
    history = model.history_
    assert len(history) < 60
    assert model.best_epoch_ == history["epoch"].max() - 3  # stopped after `patience` epochs
    assert model.best_score_ == history.set_index("epoch").loc[model.best_epoch_, "valid_r"]
    assert model.best_score_ >= history["valid_r"].max() - 1e-4
    # the history marks the epoch whose weights were kept, and only that one
    assert history["kept"].sum() == 1
    assert history.loc[history["kept"], "epoch"].item() == model.best_epoch_


def test_grid_search_on_list_of_bags_by_patient():
    bags = random_bags(24, n_features=5, seed=4)
    coords = [np.column_stack([np.arange(len(b)) * 224, np.zeros(len(b))]) for b in bags]
    X = [Bag(b, coords=c) for b, c in zip(bags, coords)]
    y = np.array([b[:, 0].mean() for b in bags])
    groups = np.repeat(np.arange(12), 2)
    pipe = make_pipeline(SuperTiles(n_clusters=10, random_state=0), HE2RNARegressor(**FAST))
    search = GridSearchCV(
        pipe,
        {
            "he2rnaregressor__ks": [(1, 2), (5, 10)],
            "he2rnaregressor__hidden_layer_sizes": [(8,), (16,)],
        },
        cv=GroupKFold(3),
    )
    search.fit(X, y, groups=groups)
    best = search.best_estimator_
    assert best.predict(X).shape == (24,)
    assert best.transform(X).shape == (24, best[-1].hidden_layer_sizes[-1])
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def test_groups_routed_under_metadata_routing():
    bags = random_bags(24, n_features=5, seed=5)
    y = np.array([b[:, 0].mean() for b in bags])
    groups = np.repeat(np.arange(8), 3)
    seen = {}

    class Spy(HE2RNARegressor):
        def fit(self, X, y, groups=None):
            seen["groups"] = groups
            return super().fit(X, y, groups=groups)

    with config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            Spy(**{**FAST, "validation_fraction": 0.3}), {"max_epochs": [2]}, cv=GroupKFold(2)
        )
        search.fit(bags, y, groups=groups)
    assert seen["groups"] is not None and len(seen["groups"]) == 24


def _extreme_tiles(n_bags, seed, n_tiles=(100, 400)):
    """Large bags where a handful (0-5) of extreme tiles drive the gene."""
    rng = np.random.default_rng(seed)
    bags, y = [], []
    for _ in range(n_bags):
        n, count = int(rng.integers(*n_tiles)), int(rng.integers(0, 6))
        x = rng.normal(size=(n, 16)).astype(np.float32)
        x[rng.choice(n, count, replace=False), :4] += 3.0
        bags.append(x)
        y.append(count)
    return bags, np.array(y, dtype=float)


@pytest.mark.slow
def test_defaults_beat_mean_pooling_on_a_few_extreme_tiles():
    # Issue 10: the gain of the defaults must not come from dropping top-k.
    X, y = _extreme_tiles(120, seed=0, n_tiles=(60, 200))
    X_test, y_test = _extreme_tiles(80, seed=1, n_tiles=(60, 200))
    # the default tile-type network types the extreme tiles; the paper's network at its
    # defaults pools them by top-k; both beat that network with mean pooling
    defaults = HE2RNARegressor(random_state=0).fit(X, y)
    top_k = HE2RNARegressor(tile_types=None, random_state=0).fit(X, y)
    mean = HE2RNARegressor(tile_types=None, ks=(10**6,), random_state=0).fit(X, y)
    r_defaults, r_top_k, r_mean = (
        pearson_per_gene(y_test, m.predict(X_test))[0] for m in (defaults, top_k, mean)
    )
    assert r_defaults >= 0.8 and r_top_k >= 0.8
    assert min(r_defaults, r_top_k) >= r_mean + 0.1


@pytest.mark.slow
def test_paper_recipe_top_k_beats_mean_pooling_on_a_few_extreme_tiles():
    X, y = _extreme_tiles(200, seed=0)
    X_test, y_test = _extreme_tiles(80, seed=1)
    # Without early stopping: top-k training escapes its initial plateau after ~50 epochs.
    params = dict(
        tile_types=None,
        hidden_layer_sizes=(32,),
        init="random",
        k_training="random",
        ks=KS_SUPER_TILES,
        lr=3e-4,
        dropout=0.25,
        validation_fraction=None,
        max_epochs=120,
        random_state=0,
    )
    top_k = HE2RNARegressor(**params).fit(X, y)
    mean = HE2RNARegressor(**{**params, "ks": (10**6,)}).fit(X, y)
    r_top_k = pearson_per_gene(y_test, top_k.predict(X_test))[0]
    r_mean = pearson_per_gene(y_test, mean.predict(X_test))[0]
    assert r_top_k >= 0.75
    assert r_top_k >= r_mean + 0.15


def test_near_constant_predictions_warn():
    # Issue 10: the failure of the paper's recipe on small cohorts is predictions shrunk to
    # the training mean; fit says so on an untrained model and stays silent on a trained one.
    X, y = planted_fraction(60, seed=2)
    untrained = HE2RNARegressor(
        init="random", lr=1e-7, max_epochs=2, validation_fraction=None, random_state=0
    )
    with pytest.warns(UserWarning, match="nearly constant"):
        untrained.fit(X, y)
    assert untrained.train_sd_ratio_ < 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        # (max_epochs bounds the test's time; the closed-form start already varies)
        trained = HE2RNARegressor(max_epochs=10, random_state=0).fit(X, y)
    assert trained.train_sd_ratio_ > 0.5


def test_chunked_batches_give_the_same_model(data):
    bags, y = data  # bags of 3-39 tiles; 16 per batch
    params = {**FAST, "dropout": 0.0}
    whole = HE2RNARegressor(**params, max_batch_tiles=None).fit(bags, y)
    chunked = HE2RNARegressor(**params, max_batch_tiles=40).fit(bags, y)  # 1 bag at a time
    np.testing.assert_allclose(chunked.predict(bags), whole.predict(bags), rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(
        chunked.history_["train_loss"], whole.history_["train_loss"], rtol=1e-4
    )


def test_lazy_bags_from_disk(tmp_path, data):
    from he2rna_sklearn import load_bags
    from he2rna_sklearn.features import write_bag

    bags, y = data
    paths = [write_bag(tmp_path / f"{i}.h5", b, np.zeros((len(b), 2))) for i, b in enumerate(bags)]
    lazy = load_bags(paths, lazy=True)
    model = HE2RNARegressor(**FAST).fit(lazy, y)
    in_memory = HE2RNARegressor(**FAST).fit(bags, y)
    np.testing.assert_allclose(model.predict(lazy), in_memory.predict(bags), rtol=1e-5)
    bad = bags[0].copy()
    bad[1, 2] = np.inf
    write_bag(paths[0], bad, np.zeros((len(bad), 2)))
    with pytest.raises(ValueError, match="bag 0 .*NaN or infinite"):
        model.predict(lazy)


def _torch_free(obj, path="state"):
    """Paths in a (nested) pickled state that hold torch objects."""
    import torch

    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return [path]
    if isinstance(obj, dict):
        return [p for k, v in obj.items() for p in _torch_free(v, f"{path}[{k!r}]")]
    if isinstance(obj, (list, tuple)):
        return [p for i, v in enumerate(obj) for p in _torch_free(v, f"{path}[{i}]")]
    return []


def test_pickled_state_holds_no_torch_objects(fitted, data):
    # A fitted model's state is arrays and builtins, so a format that executes no code on
    # load (skops) can store it; the module is rebuilt from its config on unpickling.
    state = fitted.__getstate__()
    assert _torch_free(state) == []
    assert set(state["module_"]) == {"class", "config", "state_dict"}
    assert hasattr(fitted.module_, "config")  # getstate did not change the live estimator
    bags, _ = data
    rebuilt = HE2RNARegressor.__new__(HE2RNARegressor)
    rebuilt.__setstate__(state)
    np.testing.assert_array_equal(rebuilt.predict(bags), fitted.predict(bags))


def test_init_from_copies_weights_and_checks_architecture(data):
    from sklearn.frozen import FrozenEstimator

    bags, y = data
    source = HE2RNARegressor(**{**FAST, "max_epochs": 3}).fit(bags, y)
    warm = HE2RNARegressor(**{**FAST, "max_epochs": 1, "lr": 1e-12}, init_from=source)
    warm.fit(bags, y)
    # with no effective training, the warm-started model is the source model
    np.testing.assert_allclose(warm.predict(bags), source.predict(bags), rtol=1e-5, atol=1e-5)
    # ks may differ (super-tiles model -> all-tiles model), and FrozenEstimator works
    other_ks = HE2RNARegressor(
        **{**FAST, "max_epochs": 2}, ks=(1, 1000), init_from=FrozenEstimator(source)
    ).fit(bags, y)
    assert other_ks.module_.ks == (1, 1000)
    with pytest.raises(ValueError, match=r"hidden_layer_sizes=\(16,\) \(this model: \(8,\)\)"):
        HE2RNARegressor(**{**FAST, "hidden_layer_sizes": (8,)}, init_from=source).fit(bags, y)
    with pytest.raises(ValueError, match="activation='relu' \\(this model: 'tanh'\\)"):
        HE2RNARegressor(**FAST, activation="tanh", init_from=source).fit(bags, y)
    with pytest.raises(ValueError, match="6 tile features \\(X has 4\\)"):
        HE2RNARegressor(**FAST, init_from=source).fit([b[:, :4] for b in bags], y)
    with pytest.raises(ValueError, match="2 genes \\(y has 1\\)"):
        HE2RNARegressor(**FAST, init_from=source).fit(bags, y[:, 0])
    with pytest.raises(ValueError, match="FrozenEstimator"):
        HE2RNARegressor(**FAST, init_from=HE2RNARegressor()).fit(bags, y)


def test_clip_at_zero(data):
    bags, y = data
    model = HE2RNARegressor(**FAST, init="random").fit(bags, y - 1.5)
    raw = model.predict(bags)
    assert (raw < 0).any()
    clipped = clone(model).set_params(clip_at_zero=True).fit(bags, y - 1.5).predict(bags)
    np.testing.assert_allclose(clipped, np.maximum(raw, 0), rtol=1e-6)


def test_projects_give_per_project_early_stopping():
    # Two projects whose genes behave differently; the validation split holds both, and the
    # monitored score is the mean over projects of their mean per-gene r.
    bags, frac = planted_fraction(80, seed=4)
    projects = np.array(["COAD", "KIRC"] * 40)
    y = np.column_stack([frac, np.where(projects == "COAD", frac, -frac)])
    model = HE2RNARegressor(max_epochs=6, validation_fraction=0.25, random_state=0).fit(
        bags, y, projects=projects
    )
    assert "valid_r_projects" in model.history_.columns
    kept = model.history_.loc[model.history_["kept"], "valid_r_projects"].item()
    assert model.best_score_ == kept >= model.history_["valid_r_projects"].max() - 1e-4
    with pytest.raises(ValueError, match="projects must have one entry per bag"):
        model.fit(bags, y, projects=projects[:10])


def test_paper_settings_fit_and_warm_start_the_all_tiles_model():
    from he2rna_sklearn.model import KS_ALL_TILES, KS_SUPER_TILES, PAPER_SETTINGS

    assert set(PAPER_SETTINGS) == {"super_tiles", "all_tiles"}
    for name, ks, batch, epochs, patience in [
        ("super_tiles", KS_SUPER_TILES, 16, 200, 50),
        ("all_tiles", KS_ALL_TILES, 4, 100, 30),
    ]:
        settings = PAPER_SETTINGS[name]
        assert set(settings) <= set(HE2RNARegressor().get_params())
        assert (settings["ks"], settings["batch_size"]) == (ks, batch)
        assert (settings["max_epochs"], settings["patience"]) == (epochs, patience)
        assert settings["clip_at_zero"] and settings["k_training"] == "random"
        assert settings["dropout"] == 0.25 and not settings["refit"]
        assert settings["init"] == "random" and not settings["standardize"]
    with pytest.raises(TypeError):
        PAPER_SETTINGS["super_tiles"]["lr"] = 1.0  # read-only
    # The two-stage recipe at toy size: super-tiles model, then all tiles from it.
    bags = [
        Bag(b, coords=np.column_stack([np.arange(len(b)) * 10, np.zeros(len(b))]))
        for b in random_bags(24, n_features=5, min_tiles=20, max_tiles=40, seed=6)
    ]
    y = np.abs(np.column_stack([[b.features[:, 0].mean() for b in bags]] * 2)) + 1
    small = {"hidden_layer_sizes": (8, 8), "max_epochs": 3, "random_state": 0}
    stage1 = make_pipeline(
        SuperTiles(n_clusters=10, random_state=0),
        HE2RNARegressor(**{**PAPER_SETTINGS["super_tiles"], **small}),
    ).fit(bags, y)
    stage2 = HE2RNARegressor(**{**PAPER_SETTINGS["all_tiles"], **small}, init_from=stage1[-1])
    pred = stage2.fit(bags, y).predict(bags)
    assert pred.shape == (24, 2) and (pred >= 0).all()


def test_ridge_warm_start_is_the_ridge_baseline_under_mean_pooling():
    # Issue 10: the closed-form start puts the network exactly at a ridge regression on
    # standardised mean-pooled features, inside HE2RNA's family (k above every bag).
    from sklearn.linear_model import RidgeCV
    from sklearn.preprocessing import StandardScaler

    from he2rna_sklearn import BagPooling
    from he2rna_sklearn.model._warm_start import RIDGE_ALPHAS

    bags, frac = planted_fraction(60, seed=5)
    rng = np.random.default_rng(0)
    y = np.column_stack([frac, rng.normal(size=60), frac + rng.normal(0, 0.1, 60)])
    # (the regressor standardises the targets, so the shared penalty is chosen on them)
    y_mean, y_std = y.mean(axis=0), y.std(axis=0)
    baseline = make_pipeline(BagPooling(), StandardScaler(), RidgeCV(alphas=RIDGE_ALPHAS))
    expected = baseline.fit(bags, (y - y_mean) / y_std).predict(bags) * y_std + y_mean
    for hidden in [(32, 32), ()]:
        model = HE2RNARegressor(
            tile_types=None,
            hidden_layer_sizes=hidden,
            ks=(10**6,),
            init="ridge",
            max_epochs=1,
            lr=1e-12,
            validation_fraction=None,
            random_state=0,
        ).fit(bags, y)
        np.testing.assert_allclose(model.predict(bags), expected, rtol=1e-4, atol=1e-4)
        assert model.init_alpha_ == baseline[-1].alpha_
        # every tile's score is linear in its features: the map is the ridge's own
        tiles = model.predict_tiles(bags[0])
        z = (bags[0] - baseline[1].mean_) / baseline[1].scale_
        ridge_tiles = (z @ baseline[-1].coef_.T + baseline[-1].intercept_) * y_std + y_mean
        np.testing.assert_allclose(tiles, ridge_tiles, rtol=1e-3, atol=1e-3)


def test_refit_learns_from_the_validation_slides_too():
    # Early stopping chooses the epoch on the validation slides; refit=True then trains
    # again on every slide. With a learning rate too small to move the weights, no epoch
    # beats the closed-form start (best_epoch_ 0), so without refit the model never sees the
    # validation targets, and with refit it does.
    bags, frac = planted_fraction(60, seed=6)
    y = np.column_stack([frac, frac**2])
    params = dict(
        tile_types=None,
        hidden_layer_sizes=(16,),
        lr=1e-12,
        max_epochs=3,
        patience=2,
        random_state=0,
    )
    params["validation_fraction"] = 0.25
    first = HE2RNARegressor(**params).fit(bags, y)
    valid = first.validation_indices_
    assert first.best_epoch_ == 0 and first.refitted_
    y_changed = y.copy()
    y_changed[valid] += np.random.default_rng(0).normal(0, 0.5, size=(len(valid), 2))
    for refit, moves in [(False, False), (True, True)]:
        a = HE2RNARegressor(**params, refit=refit).fit(bags, y)
        b = HE2RNARegressor(**params, refit=refit).fit(bags, y_changed)
        np.testing.assert_array_equal(a.validation_indices_, valid)
        assert a.refitted_ is refit and len(a.history_) == len(first.history_)
        assert moves == (not np.allclose(a.predict(bags), b.predict(bags), atol=1e-5))
    # after real training, the refit trains best_epoch_ epochs on all slides
    params.update(lr=1e-3, max_epochs=6)
    kept = HE2RNARegressor(**params, refit=False).fit(bags, y)
    refitted = HE2RNARegressor(**params).fit(bags, y)
    assert refitted.best_epoch_ == kept.best_epoch_ > 0
    assert not np.allclose(refitted.predict(bags), kept.predict(bags), atol=1e-5)
