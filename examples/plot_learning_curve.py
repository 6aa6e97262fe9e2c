"""
Training you can see: the learning curve, beside a ridge baseline
=================================================================

A fitted :class:`~he2rna_sklearn.HE2RNARegressor` keeps its per-epoch history
(``history_``): the training loss, the validation score that drives early stopping, and
which epoch's weights were kept. Plotting it answers the first questions about any fit:
did the network learn, did early stopping stop where it should, and does it beat a
baseline that pools the same bags and fits a ridge regression?
"""

# %%
# A small synthetic cohort and its tile features (random ResNet18 weights, offline).
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from he2rna_sklearn import BagPooling, HE2RNARegressor, SlideFeaturizer
from he2rna_sklearn.datasets import make_synthetic_cohort
from he2rna_sklearn.metrics import mean_gene_correlation
from he2rna_sklearn.plotting import plot_learning_curve

cohort = make_synthetic_cohort(
    n_patients=24, out_dir=tempfile.mkdtemp(), grid=(10, 12), random_state=2, progress=False
)
bags = SlideFeaturizer(
    backbone="resnet18", weights=None, mpp=1.0, tile_size=64, progress=False
).fit_transform(cohort.slide_paths)
Y, patients = cohort.expression, cohort.patient_ids

# %%
# Hold out a quarter of the patients as a test set, fit the regressor at its defaults
# (it keeps 10% of the training patients for early stopping), and the ridge baseline.
train, test = next(GroupShuffleSplit(1, test_size=0.25, random_state=0).split(bags, Y, patients))
X_train, X_test = [bags[i] for i in train], [bags[i] for i in test]
model = HE2RNARegressor(random_state=0).fit(X_train, Y.iloc[train], groups=patients[train])
baseline = make_pipeline(BagPooling(), StandardScaler(), RidgeCV()).fit(X_train, Y.iloc[train])

r_model = mean_gene_correlation(Y.iloc[test], model.predict(X_test))
r_baseline = mean_gene_correlation(Y.iloc[test], baseline.predict(X_test))
print(f"held-out mean per-gene r: HE2RNA {r_model:.3f}, ridge baseline {r_baseline:.3f}")
print(
    "HE2RNA beats the baseline here."
    if r_model > r_baseline
    else "HE2RNA does not beat the baseline here."
)
print(model.history_.head())

# %%
# The learning curve. The dotted vertical line marks the kept epoch (0 is the closed-form
# start, before any gradient step); the red curve is the early-stopping score on the
# validation patients, and the dotted red line the baseline's score on the same patients
# when fitted on the same training patients.
valid = model.validation_indices_
fit_part = np.setdiff1d(np.arange(len(train)), valid)
ridge = make_pipeline(BagPooling(), StandardScaler(), RidgeCV())
ridge.fit([X_train[i] for i in fit_part], Y.iloc[train[fit_part]])
r_valid = mean_gene_correlation(Y.iloc[train[valid]], ridge.predict([X_train[i] for i in valid]))
ax = plot_learning_curve(model, baseline=r_valid)
ax.set_title(f"HE2RNA (kept epoch {model.best_epoch_}, {len(model.history_)} recorded)")
plt.tight_layout()
plt.show()
