import numpy as np
import pandas as pd
import pytest

from ..conftest import planted_fraction


@pytest.fixture(scope="module")
def cohort():
    bags, frac = planted_fraction(60, seed=3)
    rng = np.random.default_rng(0)
    Y = pd.DataFrame(
        {"MARKER": 2 + 3 * frac + rng.normal(0, 0.05, 60), "NOISE": rng.normal(size=60)}
    )
    groups = np.repeat(np.arange(30), 2)
    return bags, Y, groups
