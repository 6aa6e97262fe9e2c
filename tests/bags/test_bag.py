import pickle

import numpy as np
import pytest

from he2rna_sklearn import Bag


def test_converts_to_float32_2d():
    bag = Bag(
        np.arange(6, dtype=np.float64).reshape(3, 2), coords=[[0, 0], [1, 0], [2, 0]], slide_id="s"
    )
    arr = np.asarray(bag)
    assert arr.dtype == np.float32 and arr.shape == (3, 2)
    assert len(bag) == 3 and bag.shape == (3, 2) and bag.n_features == 2
    assert np.asarray(bag, dtype=np.float64).dtype == np.float64
    assert repr(bag) == "Bag(slide_id='s', n_tiles=3, n_features=2)"


def test_list_of_bags_is_not_stacked_by_accident():
    bags = [Bag(np.zeros((3, 2))), Bag(np.zeros((3, 2)))]
    arr = np.empty(len(bags), dtype=object)
    arr[:] = bags
    assert arr.shape == (2,) and isinstance(arr[0], Bag)


def test_shape_errors_name_the_slide():
    with pytest.raises(ValueError, match="2-D"):
        Bag(np.zeros((2, 3, 4)), slide_id="x")
    with pytest.raises(ValueError, match=r"coords must have shape \(2, 2\).*'x'"):
        Bag(np.zeros((2, 3)), coords=np.zeros((3, 2)), slide_id="x")
    with pytest.raises(ValueError, match="assignment"):
        Bag(np.zeros((2, 3)), assignment=[0, 5])


def test_pickles():
    bag = Bag(np.ones((2, 2)), coords=np.zeros((2, 2)), slide_id="s", meta={"mpp": 0.5})
    again = pickle.loads(pickle.dumps(bag))
    np.testing.assert_array_equal(np.asarray(again), np.asarray(bag))
    assert again.meta == {"mpp": 0.5}
