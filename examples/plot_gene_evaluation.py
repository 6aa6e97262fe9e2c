"""
Per-gene evaluation with statistics
===================================

The HE2RNA protocol: cross-validation split by patient, then for every gene the Pearson
correlation between predicted and measured expression, tested one-sided (is the gene
predicted at all?) with Holm-Bonferroni and Benjamini-Hochberg corrections.
"""

# %%
import tempfile

import matplotlib.pyplot as plt

from he2rna_sklearn import HE2RNARegressor, SlideFeaturizer
from he2rna_sklearn.datasets import make_synthetic_cohort
from he2rna_sklearn.evaluation import cross_validate_genes
from he2rna_sklearn.plotting import plot_gene_correlations, plot_predicted_vs_observed

cohort = make_synthetic_cohort(
    n_patients=24, out_dir=tempfile.mkdtemp(), grid=(10, 12), random_state=1, progress=False
)
bags = SlideFeaturizer(
    backbone="resnet18", weights=None, mpp=1.0, tile_size=64, progress=False
).fit_transform(cohort.slide_paths)

# %%
# Four folds by patient (``cv=4`` means ``GroupKFold(4)``); ``groups`` also reaches each
# fold's ``fit``, where HE2RNARegressor uses it for its early-stopping split and the inner
# folds of its closed-form start. The regressor is at its defaults (the tile-type network).
model = HE2RNARegressor(random_state=0)
result = cross_validate_genes(model, bags, cohort.expression, cohort.patient_ids, cv=4)
print(result.summary)
print(result.pooled.sort_values("r", ascending=False).head(8).round(4))

# %%
# Marker genes follow their tissue's fraction; noise genes should not pass the corrected
# threshold.
table = result.pooled.join(cohort.genes)
print(table.groupby("program")[["r", "p_holm"]].median().round(3))
plot_gene_correlations(result.pooled, correction="holm")
plt.show()

# %%
# Predicted against measured expression for the best genes (out-of-fold predictions).
plot_predicted_vs_observed(cohort.expression, result.predictions, n_best=6, table=result.pooled)
plt.show()
