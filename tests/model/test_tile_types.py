"""The tile-type network: soft codebook, pooled type fractions, low-rank readout."""

import numpy as np
import pytest
import torch

from he2rna_sklearn import HE2RNARegressor
from he2rna_sklearn.bags import TileCodebook
from he2rna_sklearn.evaluation import tuned_linear_baseline
from he2rna_sklearn.metrics import pearson_per_gene
from he2rna_sklearn.model import PAPER_SETTINGS, HE2RNAModule, ReducedRankRidge, TileTypeModule


def typed_cohort(n_bags=80, n_genes=30, seed=0):
    """Slides mixing three tile types that lie on one line in feature space (0, +3 and -3
    on the first three features), so that the mean features give the difference of the
    outer types' shares, not their sum. Genes follow the three shares (a low-rank target),
    many of them through the sum that only tile typing sees."""
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(3, n_genes))
    loadings[1] = loadings[2] = rng.normal(size=n_genes)  # types 1 and 2: one programme
    bags, shares = [], []
    for _ in range(n_bags):
        p = rng.dirichlet([1.0, 1.0, 1.0])
        types = rng.choice(3, size=int(rng.integers(30, 60)), p=p)
        x = rng.normal(scale=0.5, size=(len(types), 8))
        x[:, :3] += np.array([0.0, 3.0, -3.0])[types, None]
        bags.append(x.astype(np.float32))
        shares.append(np.bincount(types, minlength=3) / len(types))
    Y = np.sqrt(np.array(shares)) @ loadings + 0.1 * rng.normal(size=(n_bags, n_genes))
    return bags, Y, np.arange(n_bags)


def test_defaults_beat_the_tuned_linear_baseline_where_tile_types_are_nonlinear():
    bags, Y, groups = typed_cohort()
    train, test = slice(0, 60), slice(60, None)
    model = HE2RNARegressor(random_state=0).fit(bags[train], Y[train], groups=groups[train])
    assert isinstance(model.module_, TileTypeModule)
    base = tuned_linear_baseline().fit(
        bags[train], Y[train], tunedlinearregressor__groups=groups[train]
    )
    r_model = np.nanmean(pearson_per_gene(Y[test], model.predict(bags[test])))
    r_base = np.nanmean(pearson_per_gene(Y[test], base.predict(bags[test])))
    assert r_model > 0.6 and r_model > r_base + 0.3, (r_model, r_base)


def test_tile_scores_are_the_prediction_for_a_slide_of_such_tiles():
    bags, Y, _ = typed_cohort(40)
    model = HE2RNARegressor(tile_types=8, max_epochs=3, random_state=0).fit(bags, Y)
    tiles = model.predict_tiles(bags[0])
    homogeneous = model.predict([np.repeat(bags[0][i : i + 1], 5, axis=0) for i in range(4)])
    np.testing.assert_allclose(tiles[:4], homogeneous, rtol=1e-4, atol=1e-4)
    assert model.transform(bags[:3]).shape == (3, model.module_.embedding_size)


def test_closed_form_start_is_the_codebook_and_reduced_rank_ridge():
    bags, Y, _ = typed_cohort(40)
    model = HE2RNARegressor(
        tile_types=6, validation_fraction=None, max_epochs=1, lr=1e-12, random_state=0
    ).fit(bags, Y)
    # rebuild the start from its parts: the same codebook, its sqrt fractions, the ridge
    codebook = TileCodebook(6, temperature=0.2, link="sqrt")
    codebook.mean_ = model.module_.input_mean.double().numpy()
    codebook.scale_ = model.module_.input_scale.double().numpy()
    weight = model.module_.types.weight.detach().double().numpy()
    bias = model.module_.types.bias.detach().double().numpy()
    codebook.logit_weights = lambda: (weight, bias)
    codebook.cluster_centers_, codebook.n_features_in_ = np.zeros((6, 8)), 8
    F = codebook.transform(bags)
    rr = ReducedRankRidge(alpha=model.init_alpha_, rank=model.init_rank_).fit(F, Y)
    np.testing.assert_allclose(model.predict(bags), rr.predict(F), atol=2e-3)


def test_fine_tuning_moves_the_codebook_and_the_readout():
    bags, Y, _ = typed_cohort(40)
    # the same fit but for the step size and the number of epochs
    params = dict(tile_types=6, type_rank=3, validation_fraction=None, random_state=0)
    a = HE2RNARegressor(**params, max_epochs=1, lr=1e-12).fit(bags, Y)
    b = HE2RNARegressor(**params, max_epochs=5, lr=1e-2).fit(bags, Y)
    for name in ("types.weight", "factors.weight", "output.weight"):
        before, after = a.module_.state_dict()[name], b.module_.state_dict()[name]
        assert before.shape == after.shape, name
        assert not torch.allclose(before, after), name


def test_paper_settings_keep_the_mlp_with_top_k():
    bags, Y, _ = typed_cohort(30)
    params = {**PAPER_SETTINGS["super_tiles"], "max_epochs": 2, "hidden_layer_sizes": (8,)}
    model = HE2RNARegressor(**params, random_state=0).fit(bags, Y)
    assert params["tile_types"] is None and isinstance(model.module_, HE2RNAModule)


def test_too_few_tiles_for_the_types_is_a_clear_error():
    bags, Y, _ = typed_cohort(6)
    with pytest.raises(ValueError, match="tile_types=1000 needs at least as many training tiles"):
        HE2RNARegressor(tile_types=1000, validation_fraction=None).fit(bags, Y)


def test_init_from_a_tile_type_regressor():
    from he2rna_sklearn import HE2RNAClassifier

    bags, Y, _ = typed_cohort(30)
    source = HE2RNARegressor(tile_types=6, validation_fraction=None, max_epochs=2).fit(bags, Y)
    warm = HE2RNARegressor(
        tile_types=6, init_from=source, validation_fraction=None, max_epochs=1, lr=1e-12
    ).fit(bags, Y)
    np.testing.assert_allclose(warm.predict(bags), source.predict(bags), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"tile_types=6 \(this model: 4\)"):
        HE2RNARegressor(tile_types=4, init_from=source, validation_fraction=None).fit(bags, Y)
    with pytest.raises(ValueError, match=r"type_link='sqrt' \(this model: 'identity'\)"):
        HE2RNARegressor(
            tile_types=6, type_link="identity", init_from=source, validation_fraction=None
        ).fit(bags, Y)
    rank = source.module_.config["rank"]
    with pytest.raises(ValueError, match=rf"type_rank={rank} \(this model: {rank + 1}\)"):
        HE2RNARegressor(
            tile_types=6, type_rank=rank + 1, init_from=source, validation_fraction=None
        ).fit(bags, Y)
    with pytest.raises(ValueError, match="holds the tile-type network"):
        HE2RNARegressor(tile_types=None, init_from=source, validation_fraction=None).fit(bags, Y)
    with pytest.raises(ValueError, match="hidden layers of the paper's network"):
        HE2RNAClassifier(init_from=source, validation_fraction=None).fit(bags, np.arange(30) % 2)


def test_refit_learns_from_the_validation_slides_too():
    # With a learning rate too small to move the weights no epoch beats the start, and the
    # refit makes the start again on every slide: validation targets then change the model.
    bags, Y, groups = typed_cohort(40)
    params = dict(tile_types=6, lr=1e-12, max_epochs=2, patience=1, validation_fraction=0.25)
    first = HE2RNARegressor(**params, random_state=0).fit(bags, Y, groups=groups)
    valid = first.validation_indices_
    assert first.best_epoch_ == 0 and first.refitted_
    changed = Y.copy()
    changed[valid] += np.random.default_rng(0).normal(0, 0.5, size=changed[valid].shape)
    for refit in (False, True):
        a = HE2RNARegressor(**params, refit=refit, random_state=0).fit(bags, Y, groups=groups)
        b = HE2RNARegressor(**params, refit=refit, random_state=0).fit(bags, changed, groups=groups)
        assert refit == (not np.allclose(a.predict(bags), b.predict(bags), atol=1e-5))


def test_identity_link_pools_tile_scores_by_the_mean():
    bags, Y, _ = typed_cohort(30)
    model = HE2RNARegressor(
        tile_types=6, type_link="identity", max_epochs=2, validation_fraction=None
    ).fit(bags, Y)
    tiles = model.predict_tiles(bags[0])
    np.testing.assert_allclose(model.predict(bags[:1])[0], tiles.mean(axis=0), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="link must be"):
        TileTypeModule(4, 2, n_types=3, rank=2, link="log")


def test_random_k_training_does_not_apply_to_the_tile_type_network():
    # the tile-type network pools by the mean: there is no k to draw, and nothing changes
    bags, Y, _ = typed_cohort(20)
    params = dict(tile_types=4, max_epochs=2, validation_fraction=None, random_state=0)
    with pytest.warns(UserWarning, match="k_training shape the paper's network only"):
        a = HE2RNARegressor(**params, k_training="random").fit(bags, Y)
    b = HE2RNARegressor(**params).fit(bags, Y)
    np.testing.assert_allclose(a.predict(bags), b.predict(bags), rtol=1e-5, atol=1e-6)


def test_an_interrupted_refit_leaves_no_fitted_model(monkeypatch):
    # Ctrl-C in the refit's closed-form start, after the selection run built a new network:
    # the model must not pair that network with the previous fit's target scale.
    from sklearn.exceptions import NotFittedError

    import he2rna_sklearn.model._regressor as regressor_module

    bags, Y, groups = typed_cohort(40)
    model = HE2RNARegressor(tile_types=6, max_epochs=2, validation_fraction=0.25, random_state=0)
    model.fit(bags, Y, groups=groups)
    real, calls = regressor_module.codebook_solution, []

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the refit's start; the first call is the selection run's
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(regressor_module, "codebook_solution", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(bags, 100 * Y + 50, groups=groups)
    assert len(calls) == 2
    with pytest.raises(NotFittedError):
        model.predict(bags)
    assert not [k for k in vars(model) if k.endswith("_") and not k.endswith("__")]


def test_parameters_of_the_paper_network_are_not_ignored_silently():
    import warnings

    bags, Y, _ = typed_cohort(20)
    fast = dict(max_epochs=1, validation_fraction=None, random_state=0)
    with pytest.warns(UserWarning, match="hidden_layer_sizes, dropout shape the paper's network"):
        HE2RNARegressor(tile_types=4, hidden_layer_sizes=(8,), dropout=0.1, **fast).fit(bags, Y)
    for params in (dict(tile_types=4), dict(tile_types=None, hidden_layer_sizes=(8,))):
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            HE2RNARegressor(**params, **fast).fit(bags, Y)
        assert not [w for w in seen if "shape the paper's network" in str(w.message)], params
