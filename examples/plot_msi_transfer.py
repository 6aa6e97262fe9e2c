"""
Transfer to MSI: when does the transcriptomic representation help?
===================================================================

The paper's third claim: a representation learned to predict expression transfers to a
small labelled task such as microsatellite instability (MSI), and helps most when labels
are few. Here a regressor learns expression on one synthetic cohort (the "TCGA" role);
MSI is then learned on a second cohort from a growing number of labelled patients with:

(a) logistic regression on mean-pooled tile features;
(b) logistic regression on the frozen HE2RNA embedding;
(c) HE2RNAClassifier started from the regressor's hidden layers and fine-tuned.

Each point is the patient-level ROC AUC on the cohort's unlabelled patients, averaged
over repeated draws of the labelled set.
"""

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from he2rna_sklearn import HE2RNAClassifier, HE2RNARegressor, SlideFeaturizer
from he2rna_sklearn.datasets import make_synthetic_cohort
from he2rna_sklearn.evaluation import aggregate_by_patient
from he2rna_sklearn.model import KS_ALL_TILES

workdir = tempfile.mkdtemp()
pretrain = make_synthetic_cohort(
    n_patients=30, out_dir=f"{workdir}/pretrain", grid=(10, 12), random_state=10, progress=False
)
target = make_synthetic_cohort(
    n_patients=60,
    out_dir=f"{workdir}/msi",
    grid=(10, 12),
    msi_fraction=0.35,
    random_state=11,
    progress=False,
)
featurizer = SlideFeaturizer(
    backbone="resnet18", weights=None, mpp=1.0, tile_size=64, progress=False
)
bags_pre = featurizer.transform(pretrain.slide_paths)
bags = featurizer.transform(target.slide_paths)

# %%
# The transcriptomic representation, learned from the first cohort's expression only.
regressor = HE2RNARegressor(
    ks=KS_ALL_TILES,
    hidden_layer_sizes=(64,),
    lr=1e-3,
    max_epochs=80,
    validation_fraction=None,
    random_state=0,
)
regressor.fit(bags_pre, pretrain.expression)

# %%
# Learning curves on the MSI cohort, by patient.
y = (target.msi.to_numpy() == "MSI-H").astype(int)
patients = pd.Series(y, index=target.patient_ids).groupby(level=0).first()


def mean_pool(X):
    return np.stack([np.asarray(b).mean(axis=0) for b in X])


methods = {
    "(a) mean-pooled tile features": lambda: make_pipeline(
        FunctionTransformer(mean_pool), StandardScaler(), LogisticRegression(C=0.1)
    ),
    "(b) HE2RNA embedding (frozen)": lambda: make_pipeline(
        FrozenEstimator(regressor), StandardScaler(), LogisticRegression(C=0.1)
    ),
    "(c) HE2RNAClassifier, fine-tuned": lambda: HE2RNAClassifier(
        init_from=regressor,
        ks=KS_ALL_TILES,
        lr=1e-3,
        max_epochs=30,
        validation_fraction=None,
        class_weight="balanced",
        random_state=0,
    ),
}
sizes, repeats = (6, 12, 24), 4
rows = []
for n in sizes:
    split = StratifiedShuffleSplit(n_splits=repeats, train_size=n, random_state=n)
    for rep, (train_p, _) in enumerate(split.split(patients.index, patients.to_numpy())):
        train = np.isin(target.patient_ids, patients.index[train_p])
        for name, make in methods.items():
            model = make().fit([b for b, t in zip(bags, train) if t], y[train])
            test_bags = [b for b, t in zip(bags, train) if not t]
            proba = model.predict_proba(test_bags)[:, 1]
            per_patient = aggregate_by_patient(proba, target.patient_ids[~train])
            auc = roc_auc_score(patients.loc[per_patient.index], per_patient)
            rows.append({"labelled patients": n, "method": name, "repeat": rep, "auc": auc})
curves = pd.DataFrame(rows)
summary = curves.groupby(["labelled patients", "method"])["auc"].agg(["mean", "std"])
print(summary.round(3).unstack("method")["mean"].to_string())

# %%
fig, ax = plt.subplots(figsize=(6, 4))
for name, part in summary.groupby(level="method"):
    part = part.droplevel("method")
    ax.errorbar(part.index, part["mean"], yerr=part["std"], marker="o", capsize=3, label=name)
ax.set_xlabel("labelled patients")
ax.set_ylabel("patient-level MSI ROC AUC (held-out patients)")
ax.legend(frameon=False, fontsize=8)
plt.show()

# %%
# What the figure says. On this synthetic cohort MSI-high tumours differ by their
# lymphoid and mucin content, which mean-pooled tile features already carry linearly, so
# (a) is a strong baseline even with six labelled patients; the representation learned
# from expression (b, c) encodes the same composition and, here, does not beat it by more
# than the spread between draws. The paper's advantage came with 2,048-d ImageNet
# features and real MSI morphology, where raw features are harder to use with few labels.
smallest = summary.xs(sizes[0], level="labelled patients")
best_transfer = smallest["mean"].iloc[1:].max()
gap = best_transfer - smallest["mean"].iloc[0]
spread = smallest["std"].mean()
verdict = "helps" if gap > spread else "does not clearly help"
print(
    f"At {sizes[0]} labelled patients, transfer {verdict}: best of (b, c) "
    f"{best_transfer:.3f} vs (a) {smallest['mean'].iloc[0]:.3f} "
    f"(difference {gap:+.3f}, typical sd across draws {spread:.3f})."
)
