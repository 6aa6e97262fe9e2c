"""
Quickstart: slides to gene expression
=====================================

Featurize a small synthetic cohort, fit :class:`~he2rna_sklearn.HE2RNARegressor` with
patient-grouped cross-validation, and paint one gene's tile scores on a slide.
"""

# %%
# A synthetic cohort of real-tissue slides with known composition and expression.
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GroupKFold, cross_val_predict

from he2rna_sklearn import HE2RNARegressor, SlideFeaturizer
from he2rna_sklearn.datasets import make_synthetic_cohort
from he2rna_sklearn.evaluation import ridge_baseline
from he2rna_sklearn.metrics import pearson_per_gene
from he2rna_sklearn.spatial import plot_tile_heatmap

workdir = tempfile.mkdtemp()
cohort = make_synthetic_cohort(
    n_patients=16, out_dir=workdir, grid=(12, 16), random_state=0, progress=False
)
print(cohort.DESCR)

# %%
# Tile features. Random ResNet18 weights keep this offline; use
# ``backbone="resnet50", weights="imagenet"`` for real work.
featurizer = SlideFeaturizer(
    backbone="resnet18", weights=None, mpp=1.0, tile_size=112, progress=False
)
bags = featurizer.fit_transform(cohort.slide_paths)
print(bags[0], bags[0].coords[:3])

# %%
# Cross-validated predictions, grouped by patient, beside the ridge baseline (a ridge on
# each slide's mean tile features): a deep model is only worth its cost if it beats it.
# HE2RNA at its defaults: it starts from that ridge, built inside the network, and
# fine-tunes it with top-k pooling, early-stopped on held-out patients.
model = HE2RNARegressor(random_state=0)
r = {}
for name, estimator in [("HE2RNA", model), ("ridge baseline", ridge_baseline())]:
    pred = cross_val_predict(
        estimator, bags, cohort.expression, groups=cohort.patient_ids, cv=GroupKFold(4)
    )
    r[name] = pearson_per_gene(cohort.expression, pred)
for program in ("lymphoid", "tumour", "stroma", "noise"):
    mask = (cohort.genes["program"] == program).to_numpy()
    print(
        f"{program:9s} mean r: HE2RNA {np.nanmean(r['HE2RNA'][mask]):+.2f}, "
        f"ridge baseline {np.nanmean(r['ridge baseline'][mask]):+.2f}"
    )

# %%
# Virtual spatialization: tile scores of a T-cell marker on one slide.
model.fit(bags, cohort.expression)
gene = list(model.gene_names_).index("CD3E")
ax = plot_tile_heatmap(bags[0], model.predict_tiles(bags[0])[:, gene], label="CD3E")
plt.show()
