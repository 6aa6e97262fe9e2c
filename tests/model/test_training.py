import numpy as np
import pytest
import torch
from skorch import NeuralNetRegressor

from he2rna_sklearn.model._training import WarmEarlyStopping, validation_split


def test_validation_split_keeps_patients_together():
    groups = np.repeat(np.arange(10), 3)
    train, valid = validation_split(30, groups, 0.25, seed=0)
    assert not set(groups[train]) & set(groups[valid])
    assert len(set(groups[valid])) == 3


def test_validation_split_without_validation_and_too_few_slides():
    train, valid = validation_split(5, None, None, seed=0)
    np.testing.assert_array_equal(train, np.arange(5))
    assert valid is None
    with pytest.raises(ValueError, match="validation_fraction=None"):
        validation_split(3, None, 0.1, seed=0)


def _net(start_score=None, max_epochs=20):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3)).astype(np.float32)
    y = (X @ np.array([1.0, -2.0, 0.5], dtype=np.float32))[:, None]
    stopper = WarmEarlyStopping(
        monitor="valid_loss", patience=2, threshold=1e-4, threshold_mode="abs", load_best=True
    )
    net = NeuralNetRegressor(
        torch.nn.Linear,
        module__in_features=3,
        module__out_features=1,
        lr=0.1,
        max_epochs=max_epochs,
        callbacks=[("early_stopping", stopper)],
        verbose=0,
    )
    torch.manual_seed(0)
    net.initialize()
    if start_score is not None:
        net.set_params(callbacks__early_stopping__start_score=start_score)
    return net, X, y


def test_warm_early_stopping_counts_the_start_as_epoch_0():
    # An unbeatable start score (a loss below 0): no epoch improves on it, so training
    # stops after `patience` epochs and the start's weights are restored.
    net, X, y = _net(start_score=-1.0)
    start = {k: v.clone() for k, v in net.module_.state_dict().items()}
    net.partial_fit(X, y)
    stopper = dict(net.callbacks_)["early_stopping"]
    assert stopper.start_score == -1.0 and stopper.best_epoch_ == 0
    assert len(net.history) == 2
    for key, value in net.module_.state_dict().items():
        torch.testing.assert_close(value, start[key], rtol=0, atol=0)
    # Without a start score it is skorch's EarlyStopping: the first epoch improves.
    net, X, y = _net()
    net.partial_fit(X, y)
    assert dict(net.callbacks_)["early_stopping"].best_epoch_ >= 1
    # The start is the score to beat by `threshold`, as an epoch's score would be.
    net, X, y = _net(max_epochs=1)
    net.partial_fit(X, y)
    first = net.history[0, "valid_loss"]
    for start, best_epoch in [(first + 5e-5, 0), (first + 2e-4, 1)]:
        net, X, y = _net(start_score=start, max_epochs=1)
        net.partial_fit(X, y)
        assert net.history[0, "valid_loss"] == first
        assert dict(net.callbacks_)["early_stopping"].best_epoch_ == best_epoch
