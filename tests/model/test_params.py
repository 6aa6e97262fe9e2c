import ast
import inspect
import re

import pytest

from he2rna_sklearn import HE2RNAClassifier, HE2RNARegressor, MeanFeatureEmbedder, model
from he2rna_sklearn.model._base import BaseHE2RNA
from he2rna_sklearn.model._classifier import CLASSIFIER_OVERRIDES
from he2rna_sklearn.model._params import NETWORK_CONSTRAINTS, SHARED_DEFAULTS


def _defaults(cls):
    return {
        name: p.default
        for name, p in inspect.signature(cls.__init__).parameters.items()
        if name != "self"
    }


def test_one_set_of_defaults_for_the_shared_parameters():
    regressor, classifier = _defaults(HE2RNARegressor), _defaults(HE2RNAClassifier)
    shared = set(regressor) & set(classifier)
    # the shared parameters are the base's: its table of defaults and its constraints
    assert shared == set(SHARED_DEFAULTS) == set(NETWORK_CONSTRAINTS)
    assert set(BaseHE2RNA._parameter_constraints) == shared
    # the regressor takes every shared default from the base's table
    assert {name: regressor[name] for name in shared} == dict(SHARED_DEFAULTS)
    assert HE2RNARegressor().get_params() == {**regressor}
    # the classifier too, but for its declared overrides, each a real departure
    assert set(CLASSIFIER_OVERRIDES) < shared
    assert all(CLASSIFIER_OVERRIDES[k] != SHARED_DEFAULTS[k] for k in CLASSIFIER_OVERRIDES)
    assert {name: classifier[name] for name in shared} == {
        **SHARED_DEFAULTS,
        **CLASSIFIER_OVERRIDES,
    }
    assert HE2RNAClassifier().get_params() == {**classifier}


def test_init_stores_every_parameter_as_given():
    params = dict(HE2RNAClassifier().get_params(), dropout=0.5, ks=(3,), random_state=7)
    assert HE2RNAClassifier(**params).get_params() == params


@pytest.mark.parametrize("cls", [HE2RNARegressor, HE2RNAClassifier, MeanFeatureEmbedder])
def test_documented_defaults_are_the_defaults(cls):
    # A default changed in the table must be changed in the docstrings too.
    documented = dict(re.findall(r"^    (\w+) : .*default=(.+)$", cls.__doc__, re.MULTILINE))
    defaults = cls().get_params()
    listed = set(re.findall(r"^    (\w+) : ", cls.__doc__, re.MULTILINE))
    assert set(defaults) <= listed and set(documented) <= set(defaults)
    assert len(documented) >= len(defaults) - 1  # init_from is "optional"
    for name, text in documented.items():
        try:
            value = ast.literal_eval(text)
        except ValueError:  # a constant of the package, e.g. KS_DEFAULT
            value = getattr(model, text)
        assert value == defaults[name], f"{cls.__name__} documents {name}={text}"
