"""Reduced-rank ridge and the tuned linear baseline."""

import numpy as np
import pytest
from sklearn.linear_model import Ridge

from he2rna_sklearn.model import ReducedRankRidge, TunedLinearRegressor


def _planted(rank, n=80, p=60, genes=300, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, p))
    if rank is None:  # full rank: every gene its own combination of features
        B = rng.normal(size=(p, genes)) * 0.3
    else:
        B = rng.normal(size=(p, rank)) @ rng.normal(size=(rank, genes)) / np.sqrt(p)
    return X, X @ B + noise * rng.normal(size=(n, genes)), np.repeat(np.arange(n // 2), 2)


def test_reduced_rank_ridge_is_ridge_at_full_rank_and_truncates():
    X, Y, _ = _planted(3)
    full = ReducedRankRidge(alpha=2.0).fit(X, Y)
    ref = Ridge(alpha=2.0).fit(X, Y)
    np.testing.assert_allclose(full.coef_, ref.coef_, atol=1e-10)
    np.testing.assert_allclose(full.predict(X), ref.predict(X), atol=1e-9)
    low = ReducedRankRidge(alpha=2.0, rank=3).fit(X, Y)
    assert np.linalg.matrix_rank(low.coef_, tol=1e-8) == 3
    assert ReducedRankRidge(alpha=1.0, rank=2).fit(X, Y[:, 0]).predict(X).shape == (80,)


def test_tuned_baseline_picks_reduced_rank_on_a_low_rank_target():
    X, Y, groups = _planted(3)
    model = TunedLinearRegressor().fit(X, Y, groups=groups)
    assert model.family_ == "rrr" and model.rank_ == 3, model.description_
    assert model.description_.startswith("reduced-rank ridge (rank 3")
    # and plain ridge when every gene has its own signal (no low rank to find)
    X, Y, groups = _planted(None, noise=0.5)
    assert TunedLinearRegressor().fit(X, Y, groups=groups).family_ == "ridge"


def test_tuned_baseline_picks_pca_when_only_leading_components_carry_signal():
    rng = np.random.default_rng(2)
    n, p = 80, 60
    scales = np.r_[np.full(4, 10.0), np.ones(p - 4)]
    X = rng.normal(size=(n, p)) * scales  # 4 strong directions
    Y = X[:, :4] @ rng.normal(size=(4, 200)) / 10 + rng.normal(size=(n, 200))
    model = TunedLinearRegressor(families=("ridge", "pca")).fit(X, Y)
    assert model.family_ == "pca" and model.rank_ == 4, model.description_


def test_inner_folds_keep_patients_together():
    X, Y, _ = _planted(2, n=40)
    # patients made of 2 identical slides: slide-level folds leak, patient folds do not,
    # so the penalty chosen differs
    X2, Y2 = np.repeat(X, 2, axis=0), np.repeat(Y, 2, axis=0)
    groups = np.repeat(np.arange(40), 2)
    leaky = TunedLinearRegressor(families=("ridge",)).fit(X2, Y2)
    grouped = TunedLinearRegressor(families=("ridge",)).fit(X2, Y2, groups=groups)
    assert grouped.alpha_ > leaky.alpha_
    assert TunedLinearRegressor().get_metadata_routing().fit.requests == {"groups": True}


def test_errors():
    X, Y, _ = _planted(2, n=20)
    with pytest.raises(ValueError, match="families"):
        TunedLinearRegressor(families=("lasso",)).fit(X, Y)
    with pytest.raises(ValueError, match="groups must have one entry"):
        TunedLinearRegressor().fit(X, Y, groups=[1, 2])
    with pytest.raises(ValueError, match="ranks must be positive"):
        TunedLinearRegressor(ranks=(0,)).fit(X, Y)


def test_random_state_takes_a_random_state_instance():
    # the constraint says "random_state", so a RandomState instance must work as an int does
    X, Y, _ = _planted(2, n=30)
    a = TunedLinearRegressor(random_state=np.random.RandomState(0)).fit(X, Y)
    b = TunedLinearRegressor(random_state=np.random.RandomState(0)).fit(X, Y)
    assert a.description_ == b.description_
    np.testing.assert_allclose(a.predict(X), b.predict(X))
