import numpy as np
import pytest

from he2rna_sklearn import Bag
from he2rna_sklearn.bags import check_bags


def test_accepts_list_tuple_object_array_and_3d():
    bags = [np.zeros((3, 4)), np.ones((5, 4))]
    obj = np.empty(2, dtype=object)
    obj[0], obj[1] = bags
    for X in (bags, tuple(bags), obj):
        out, d = check_bags(X)
        assert d == 4 and len(out) == 2 and out[1].shape == (5, 4)
    out, d = check_bags(np.zeros((3, 6, 4)))
    assert len(out) == 3 and out[0].shape == (6, 4)


def test_nested_lists_are_converted():
    out, d = check_bags([[[1, 2], [3, 4]], [[5, 6]]])
    assert d == 2 and out[1].dtype == np.float32


def test_single_2d_array_is_refused_with_advice():
    with pytest.raises(ValueError, match=r"\[X\]"):
        check_bags(np.zeros((3, 4)))
    with pytest.raises(TypeError, match="single Bag"):
        check_bags(Bag(np.zeros((3, 4))))


def test_empty_bag_named():
    with pytest.raises(ValueError, match=r"bag 1 \(slide 'b'\).*empty"):
        check_bags([Bag(np.zeros((2, 3)), slide_id="a"), Bag(np.zeros((0, 3)), slide_id="b")])


def test_nan_features_named():
    bad = np.zeros((4, 3))
    bad[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"bag 1 .*NaN or infinite features in 1 of 4 tiles"):
        check_bags([np.zeros((2, 3)), bad])


def test_feature_count_mismatch():
    with pytest.raises(ValueError, match="bag 1 of X has 5 features, expected 3"):
        check_bags([np.zeros((2, 3)), np.zeros((2, 5))])
    with pytest.raises(ValueError, match="expected 4 as seen in fit"):
        check_bags([np.zeros((2, 3))], n_features=4)


def test_other_types_refused():
    with pytest.raises(TypeError, match="sequence"):
        check_bags({"a": 1})
    with pytest.raises(TypeError, match="string"):
        check_bags("slide.svs")
    with pytest.raises(ValueError, match="at least 1"):
        check_bags([])
