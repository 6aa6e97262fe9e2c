import warnings

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


@pytest.mark.parametrize(
    "value, dtype, wrap, match",
    [
        (-1e38, np.float32, True, "features of magnitude up to 1e\\+38 in 1 of 4 tiles"),
        (1e39, np.float64, False, "features of magnitude up to 1e\\+39 in 1 of 4 tiles"),
        (1e39, np.float64, True, "NaN or infinite features in 1 of 4 tiles"),  # Bag: float32
    ],
)
def test_features_that_overflow_float32_are_named(value, dtype, wrap, match):
    """Issue 18: a finite 1e38 (or a float64 1e39, infinite in float32) gave NaN rows."""
    bad = np.zeros((4, 3), dtype)
    bad[2, 1] = value
    bad = Bag(bad, slide_id="S2") if wrap else bad
    with pytest.raises(ValueError, match=r"bag 1 .*of X has " + match) as err:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # overflow in the float32 cast
            check_bags([np.zeros((2, 3)), bad])
    assert "\n" not in str(err.value)
    check_bags([np.full((2, 3), 1e29, dtype)])  # large but safe


def test_non_finite_outputs_are_named():
    from he2rna_sklearn.bags import check_finite_outputs

    values = np.zeros((3, 2))
    values[1, 0] = np.nan
    bags = [Bag(np.zeros((1, 2)), slide_id=s) for s in "ABC"]
    with pytest.raises(ValueError, match=r"M gave NaN or infinite outputs for bag 1 \(slide 'B'\)"):
        check_finite_outputs(values, bags, "M")
    assert check_finite_outputs(values[[0, 2]], bags[:2], "M") is not None
