"""Feature specs: read from bags' meta, checked against a model's with one-line errors."""

import numpy as np
import pytest

from he2rna_sklearn import Bag
from he2rna_sklearn.bags import check_feature_spec, feature_spec


def _bag(d=4, **meta):
    return Bag(np.zeros((3, d), np.float32), slide_id="s1", meta=meta)


UNI = {
    "backbone": "uni",
    "weights": "hf-hub:MahmoodLab/UNI@abc/pytorch_model.bin",
    "mpp": 0.5,
    "tile_size": 224,
}


def test_spec_from_bags():
    spec = feature_spec([_bag(**UNI), _bag(**UNI), np.zeros((2, 4))])
    assert spec == {
        "encoder": "uni",
        "weights": UNI["weights"],
        "n_features": 4,
        "mpp": 0.5,
        "tile_size": 224,
    }
    assert feature_spec([np.zeros((2, 4))]) == {
        "encoder": None,
        "weights": None,
        "n_features": 4,
        "mpp": None,
        "tile_size": None,
    }
    with pytest.raises(ValueError, match="disagree.*encoder"):
        feature_spec([_bag(**UNI), _bag(backbone="resnet50")])


def test_matching_bags_pass_and_aliases_are_one_encoder():
    spec = feature_spec([_bag(**UNI)])
    check_feature_spec([_bag(**UNI), np.zeros((5, 4))], spec)
    # Other tools' names of UNI, the same weights from a copied file, 10% off in µm/px.
    other = dict(UNI, backbone="uni_v1", weights="file:pytorch_model.bin:sha1=12", mpp=0.55)
    check_feature_spec([_bag(**other)], spec)


@pytest.mark.parametrize(
    "bag, match",
    [
        (_bag(d=5, **UNI), "takes 4 features per tile \\(uni\\) but bag 0 \\(slide 's1'\\) has 5"),
        (_bag(**dict(UNI, backbone="resnet50")), "encoder 'uni' but bag 0 .* 'resnet50'"),
        (_bag(**dict(UNI, weights="random-init(seed=0)")), "published weights"),
        (_bag(**dict(UNI, mpp=0.25, tile_size=448)), "0.5 µm/px but .* 0.25 µm/px"),
        (_bag(**dict(UNI, tile_size=512)), "tiles of 112 µm .* 256 µm"),
    ],
)
def test_mismatches_get_one_line_errors(bag, match):
    spec = feature_spec([_bag(**UNI)])
    with pytest.raises(ValueError, match=match) as err:
        check_feature_spec([bag], spec)
    assert "\n" not in str(err.value)


# -- every estimator that learns from bags records its spec and checks it (issue 18) ------
R18 = {"backbone": "resnet18", "weights": "published", "mpp": 0.5, "tile_size": 224}


def _cohort(n=16, seed=0, **meta):
    rng = np.random.default_rng(seed)
    return [
        Bag(rng.normal(size=(int(rng.integers(3, 9)), 6)).astype(np.float32),
            slide_id=f"S{i}", meta=dict(R18, **meta))
        for i in range(n)
    ]  # fmt: skip


def _fitted():
    """(name, fitted estimator, its methods that take bags) for every bag estimator."""
    import warnings

    import pandas as pd

    from he2rna_sklearn import (
        BagPooling,
        HE2RNAClassifier,
        HE2RNAEmbedder,
        HE2RNARegressor,
        MeanFeatureEmbedder,
        SuperTiles,
    )
    from he2rna_sklearn.evaluation import ridge_baseline

    bags = _cohort()
    y = pd.DataFrame({"A": [np.asarray(b)[:, 0].mean() for b in bags]})
    labels = np.array(["MSS", "MSI"] * 8)
    fast = dict(hidden_layer_sizes=(4,), max_epochs=2, validation_fraction=None, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        reg = HE2RNARegressor(init="random", **fast).fit(bags, y)
        out = [
            ("regressor", reg, ["predict", "transform", "predict_tiles"]),
            (
                "classifier",
                HE2RNAClassifier(**fast).fit(bags, labels),
                ["predict", "predict_proba", "decision_function", "predict_tiles"],
            ),
            (
                "embedder",
                HE2RNAEmbedder(HE2RNARegressor(init="random", **fast)).fit(bags, expression=y),
                ["transform"],
            ),
            (
                "mean_features",
                MeanFeatureEmbedder(hidden_layer_sizes=(4,), max_epochs=2,
                                    validation_fraction=None).fit(bags, expression=y),
                ["transform"],
            ),  # fmt: skip
            ("pooling", BagPooling().fit(bags), ["transform"]),
            ("baseline", ridge_baseline().fit(bags, y), ["predict"]),
            ("super_tiles", SuperTiles(n_clusters=2, cluster_on="features").fit(bags),
             ["transform"]),
        ]  # fmt: skip
    return bags, out


@pytest.fixture(scope="module")
def fitted():
    return _fitted()


def _call(estimator, method, bags):
    if method == "predict_tiles":
        return getattr(estimator, method)(bags[0])
    return getattr(estimator, method)(bags)


@pytest.mark.parametrize(
    "other, match",
    [
        ({"backbone": "resnet34"}, "encoder 'resnet18' but bag 0 \\(slide 'S0'\\) has 'resnet34'"),
        ({"mpp": 1.0}, "0.5 µm/px but bag 0 \\(slide 'S0'\\) was tiled at 1 µm/px"),
        ({"weights": "random-init(seed=0)"}, "published weights"),
    ],
)
def test_bag_estimators_refuse_features_of_another_spec(fitted, other, match):
    """Fitted on ResNet18 features at 0.5 µm/px, every estimator refuses same-width
    features of ResNet34, of 1 µm/px or of random weights, in one line naming the slide;
    on main (f5f0af0) they predicted from them (issue 18: a CD3E mean of 155 for 1.8)."""
    bags, estimators = fitted
    wrong = _cohort(n=2, seed=1, **other)
    for name, estimator, methods in estimators:
        first = estimator[0] if name == "baseline" else estimator  # a Pipeline
        assert first.feature_spec_["encoder"] == "resnet18", name
        for method in methods:
            with pytest.raises(ValueError, match=match) as err:
                _call(estimator, method, wrong)
            assert "\n" not in str(err.value), (name, method)
            _call(estimator, method, _cohort(n=2, seed=1))  # the same spec passes


def test_plain_arrays_carry_no_spec_and_are_checked_for_their_dimension(fitted):
    bags, estimators = fitted
    arrays = [np.asarray(b) for b in bags[:2]]
    for _, estimator, methods in estimators:
        for method in methods:
            _call(estimator, method, arrays)
        with pytest.raises(ValueError, match="features"):
            _call(estimator, methods[0], [np.zeros((3, 5), np.float32)])


def test_fit_refuses_bags_of_two_encoders():
    from he2rna_sklearn import BagPooling

    with pytest.raises(ValueError, match="disagree on their features.*resnet34"):
        BagPooling().fit(_cohort(n=2) + _cohort(n=1, backbone="resnet34"))


def test_training_bags_of_slides_scanned_at_slightly_different_resolutions_agree():
    """A slide read at its own 0.503 µm/px (within the tiler's 10%) and one downsampled to
    0.5 are one training set; 0.5 and 1.0 are not."""
    from he2rna_sklearn import BagPooling

    pool = BagPooling().fit(_cohort(n=2) + _cohort(n=2, mpp=0.503))
    assert pool.feature_spec_["mpp"] == 0.5
    with pytest.raises(ValueError, match="disagree on their features.*mpp=1.0"):
        BagPooling().fit(_cohort(n=2) + _cohort(n=1, mpp=1.0))


def test_unfitted_super_tiles_check_nothing():
    from he2rna_sklearn import SuperTiles

    out = SuperTiles(n_clusters=2, cluster_on="features").transform(_cohort(n=2, mpp=2.0))
    assert len(out) == 2 and out[0].meta["mpp"] == 2.0


def test_encoder_names_of_this_package_and_other_tools_agree():
    from he2rna_sklearn.bags._spec import same_encoder

    # the featurizer records "encoder:uni"; SEQUOIA's spec says "uni"; TRIDENT "uni_v1"
    assert same_encoder("encoder:uni", "uni")
    assert same_encoder("uni_v1", "hf-hub:MahmoodLab/uni")
    assert same_encoder("encoder:conch_v1_5", "CONCH v1.5")
    assert not same_encoder("encoder:uni", "uni2-h")
