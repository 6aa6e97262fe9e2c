"""The hooks shared by HE2RNARegressor and HE2RNAClassifier (model/_base.py)."""

import warnings

import numpy as np
import pytest
import torch

from he2rna_sklearn import Bag, HE2RNAClassifier, HE2RNARegressor
from tests.conftest import random_bags

FAST = dict(hidden_layer_sizes=(4,), max_epochs=2, validation_fraction=None, random_state=0)


@pytest.fixture(scope="module")
def models():
    bags = [Bag(b, slide_id=f"S{i}") for i, b in enumerate(random_bags(12, n_features=5))]
    y = np.array([np.asarray(b)[:, 0].mean() for b in bags])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reg = HE2RNARegressor(init="random", **FAST).fit(bags, y)
    clf = HE2RNAClassifier(**FAST).fit(bags, np.array(["a", "b"] * 6))
    return bags, reg, clf


def test_a_feature_of_1e38_is_refused_by_name(models):
    """Issue 18: on f5f0af0 predict returned a row of NaN, silently."""
    bags, reg, clf = models
    bad = np.asarray(bags[1]).copy()
    bad[0, 2] = 1e38
    X = [bags[0], Bag(bad, slide_id="HUGE")]
    for call in (reg.predict, reg.transform, clf.predict_proba, clf.decision_function):
        with pytest.raises(ValueError, match="bag 1 \\(slide 'HUGE'\\) .* magnitude up to 1e\\+38"):
            call(X)
    with pytest.raises(ValueError, match="slide 'HUGE'.*overflow"):
        reg.predict_tiles(X[1])


def test_outputs_are_checked_finite(models):
    """A network that overflows anyway (here: weights of 1e30) is an error naming the slides,
    never a row of NaN or inf."""
    import copy

    bags, reg, _ = models
    broken = copy.deepcopy(reg)
    with torch.no_grad():
        for p in broken.module_.parameters():
            p.fill_(1e30)
    with pytest.raises(ValueError, match="HE2RNARegressor gave NaN or infinite outputs for bag 0"):
        broken.predict(bags[:2])
    with pytest.raises(ValueError, match="infinite outputs for bag 0 \\(slide 'S3'\\)"):
        broken.predict_tiles(bags[3])


@pytest.mark.filterwarnings("ignore:HE2RNARegressor predicts nearly constant")
def test_ctrl_c_during_training_leaves_no_fitted_model(monkeypatch):
    # skorch's partial_fit swallows KeyboardInterrupt and ends training as if it had
    # finished: a notebook user would get a half-trained model. The interrupt must reach
    # the caller, and the estimator must not look fitted.
    import numpy as np
    from sklearn.exceptions import NotFittedError

    from he2rna_sklearn import HE2RNARegressor
    from he2rna_sklearn.model import BagNet

    rng = np.random.default_rng(0)
    bags = [rng.normal(size=(20, 4)).astype("float32") for _ in range(12)]
    y = rng.normal(size=12)
    calls = []
    real = BagNet.train_step_single

    def interrupted(self, batch, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(self, batch, **kwargs)

    model = HE2RNARegressor(
        tile_types=4, max_epochs=30, patience=2, validation_fraction=0.25, random_state=0
    )
    model.fit(bags, y)  # early stopping ends training by a KeyboardInterrupt of its own
    assert len(model.history_) < 31  # it stopped early, and the fit went through
    monkeypatch.setattr(BagNet, "train_step_single", interrupted)
    with pytest.raises(KeyboardInterrupt):
        model.fit(bags, y)
    with pytest.raises(NotFittedError):
        model.predict(bags)
