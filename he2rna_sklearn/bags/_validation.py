"""Validation of bag inputs: a sequence of 2-D (n_tiles, n_features) arrays."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ._bag import Bag

__all__ = ["MAX_ABS_FEATURE", "bag_label", "check_bags", "check_finite_outputs", "is_lazy"]

#: The largest tile feature magnitude accepted. Encoders give features of order 1 to 100;
#: values near float32's limit (3.4e38) overflow the networks' float32 arithmetic into
#: infinite or NaN predictions, so a bag holding any above this is refused by name.
MAX_ABS_FEATURE = 1e30


def bag_label(bag, index):
    """A human-readable name of bag ``index`` for error messages."""
    slide = getattr(bag, "slide_id", None)
    return f"bag {index}" + (f" (slide '{slide}')" if slide is not None else "")


def is_lazy(bag):
    """Whether the bag's features live on disk and are read on conversion."""
    features = bag.features if isinstance(bag, Bag) else bag
    return not isinstance(features, np.ndarray)


def _as_sequence(X, name):
    if isinstance(X, Bag):
        raise TypeError(
            f"{name} is a single Bag; pass a sequence of bags, e.g. [{name}], one per slide."
        )
    if isinstance(X, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of bags, got a string {X!r}.")
    if isinstance(X, np.ndarray):
        if X.dtype == object:
            if X.ndim != 1:
                raise ValueError(f"An object array {name} must be 1-D, got shape {X.shape}.")
            return list(X)
        if X.ndim == 3:
            return list(X)
        if X.ndim == 2:
            raise ValueError(
                f"{name} is a 2-D array of shape {X.shape}: expected a sequence of bags, one "
                f"(n_tiles, n_features) array per slide. If it is one slide's bag, pass "
                f"[{name}]; if it holds one vector per slide, add a tile axis with "
                f"{name}[:, None, :]."
            )
        raise ValueError(f"{name} must be a sequence of 2-D bags, got an array of shape {X.shape}.")
    if hasattr(X, "iloc") and hasattr(X, "to_numpy") and getattr(X, "ndim", 2) == 1:
        return list(X.to_numpy())  # pandas Series of bags
    if not isinstance(X, Sequence):
        raise TypeError(
            f"{name} must be a sequence (list, tuple or 1-D object array) of bags, got "
            f"{type(X).__name__}."
        )
    return list(X)


def check_bags(X, *, n_features=None, name="X", check_finite=True, min_bags=1):
    """Validate a sequence of bags and return it as a list.

    Bags may be :class:`Bag` objects, 2-D arrays or nested lists; the latter are converted
    to float32 arrays. A 3-D array is read as equal-length bags. Bags whose features live on
    disk are not read here; their values are checked when they are loaded.

    Parameters
    ----------
    X : sequence of array-like of shape (n_tiles, n_features)
    n_features : int, optional
        The feature count every bag must have (e.g. the one seen in ``fit``).
    name : str
        The parameter name used in messages.
    check_finite : bool
        Reject NaN or infinite features in in-memory bags.
    min_bags : int
        The fewest bags accepted.

    Returns
    -------
    bags : list
    n_features : int
    """
    bags = _as_sequence(X, name)
    if len(bags) < min_bags:
        raise ValueError(f"{name} holds {len(bags)} bags; at least {min_bags} are needed.")
    expected = n_features
    for i, bag in enumerate(bags):
        if not (isinstance(bag, Bag) or hasattr(bag, "shape")):
            try:
                bag = np.asarray(bag, dtype=np.float32)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{bag_label(bag, i)} of {name} is not numeric: {exc}") from exc
            bags[i] = bag
        shape = tuple(bag.shape)
        if len(shape) != 2:
            raise ValueError(
                f"{bag_label(bag, i)} of {name} must be 2-D (n_tiles, n_features), got shape "
                f"{shape}."
            )
        if shape[0] == 0:
            raise ValueError(
                f"{bag_label(bag, i)} of {name} is empty (0 tiles). Drop it, or featurize its "
                "slide with a lower min_tissue_fraction."
            )
        if expected is None:
            expected = shape[1]
        elif shape[1] != expected:
            where = "as seen in fit" if n_features is not None else "as the first bag"
            raise ValueError(
                f"{bag_label(bag, i)} of {name} has {shape[1]} features, expected {expected} "
                f"{where}."
            )
        if isinstance(bag, np.ndarray) and not np.issubdtype(bag.dtype, np.number):
            raise ValueError(f"{bag_label(bag, i)} of {name} has non-numeric dtype {bag.dtype}.")
        if check_finite and not is_lazy(bag):
            check_finite_bag(np.asarray(bag), i, bag, name)
    return bags, int(expected)


def check_finite_bag(arr, index, bag=None, name="X"):
    """Raise a ValueError naming the bag if ``arr`` holds NaN or infinite values, or values
    whose magnitude exceeds :data:`MAX_ABS_FEATURE` (they overflow float32 networks)."""
    arr = np.asarray(arr)
    if arr.size == 0 or (-MAX_ABS_FEATURE <= arr.min() and arr.max() <= MAX_ABS_FEATURE):
        return  # NaN fails both comparisons
    label = bag_label(bag if bag is not None else arr, index)
    rows = arr.reshape(arr.shape[0], -1)
    if not np.isfinite(arr).all():
        n_bad = int((~np.isfinite(rows)).any(axis=1).sum())
        raise ValueError(
            f"{label} of {name} has NaN or infinite features in {n_bad} of {arr.shape[0]} "
            "tiles. Re-featurize the slide or drop those tiles."
        )
    big = np.abs(rows.astype(np.float64)) > MAX_ABS_FEATURE
    raise ValueError(
        f"{label} of {name} has features of magnitude up to {np.abs(rows).max():.3g} in "
        f"{int(big.any(axis=1).sum())} of {arr.shape[0]} tiles; values above "
        f"{MAX_ABS_FEATURE:.0e} overflow the network's float32 arithmetic. Re-featurize the "
        "slide or drop those tiles."
    )


def check_finite_outputs(values, bags, what="The model"):
    """Raise a ValueError naming the bags whose rows of ``values`` (one per bag, e.g. a
    model's predictions) are not finite: a silent row of NaN is never returned.

    Parameters
    ----------
    values : ndarray of shape (n_bags, ...)
    bags : sequence of bags
        The bags the rows come from, for their names.
    what : str
        The model, named in the error.

    Returns
    -------
    values : ndarray
        Unchanged.
    """
    values = np.asarray(values)
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        names = [bag_label(bags[i], i) for i in np.flatnonzero(bad)[:5]]
        more = f" and {int(bad.sum()) - 5} more" if bad.sum() > 5 else ""
        raise ValueError(
            f"{what} gave NaN or infinite outputs for {', '.join(names)}{more}: their "
            "features overflow the network (check their scale against the training bags'), "
            "or the model's weights are not finite."
        )
    return values
