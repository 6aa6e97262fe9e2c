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
