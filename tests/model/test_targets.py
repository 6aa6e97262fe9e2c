"""Targets: a pandas y in another row order than the bags is refused (issue 18)."""

import numpy as np
import pandas as pd
import pytest

from he2rna_sklearn import Bag, HE2RNAClassifier, HE2RNARegressor, MeanFeatureEmbedder
from he2rna_sklearn.model._targets import check_targets
from tests.conftest import random_bags

IDS = [f"TCGA-{i:02d}" for i in range(8)]


@pytest.fixture
def bags():
    return [Bag(b, slide_id=s) for b, s in zip(random_bags(8, n_features=4), IDS)]


def _expression(order):
    rng = np.random.default_rng(0)
    return pd.DataFrame(rng.random((8, 2)), index=order, columns=["CD3E", "EPCAM"])


def test_targets_in_the_bags_order_or_indexed_otherwise_pass(bags):
    Y, names, _ = check_targets(_expression(IDS), 8, bags=bags)
    assert list(names) == ["CD3E", "EPCAM"]
    check_targets(_expression(range(8)), 8, bags=bags)  # not indexed by slide ids
    check_targets(_expression(IDS[::-1]), 8, bags=[np.asarray(b) for b in bags])  # no ids


def test_a_permuted_target_table_is_refused_with_the_fix(bags):
    """On f5f0af0 the rows were used by position: every slide got another's expression."""
    shuffled = IDS[1:] + IDS[:1]
    y = _expression(shuffled)
    match = (
        r"y is indexed by slide ids in another order than the bags \(row 0 is 'TCGA-01' for "
        r"slide 'TCGA-00', row 1 is 'TCGA-02' for slide 'TCGA-01', .* and 5 more\).*"
        r"y\.loc\[\[b\.slide_id for b in bags\]\]"
    )
    with pytest.raises(ValueError, match=match) as err:
        HE2RNARegressor(max_epochs=1).fit(bags, y)
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="another order"):
        HE2RNARegressor(max_epochs=1).fit(bags, y["CD3E"])  # a Series too
    with pytest.raises(ValueError, match="expression is indexed by slide ids in another order"):
        MeanFeatureEmbedder(max_epochs=1).fit(bags, expression=y)
    # the fix the message gives
    aligned = y.loc[[b.slide_id for b in bags]]
    check_targets(aligned, 8, bags=bags)


def test_classifier_labels_in_another_order_are_refused(bags):
    labels = pd.Series(["MSS", "MSI"] * 4, index=IDS[::-1])
    with pytest.raises(ValueError, match="row 0 is 'TCGA-07' for slide 'TCGA-00'"):
        HE2RNAClassifier(max_epochs=1).fit(bags, labels)
