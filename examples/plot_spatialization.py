"""
Virtual spatialization, checked against ground truth
====================================================

HE2RNA's tile scores (for each tile, the prediction for a slide made only of tiles like
it; with the paper's network, the per-tile MLP outputs before pooling) show where on a slide a
gene's expression comes from. The paper checked lymphocyte markers against lymphocyte
tiles; the synthetic cohort knows the true class of every tile, so the same check is exact.
"""

# %%
import tempfile

import matplotlib.pyplot as plt
import numpy as np

from he2rna_sklearn import HE2RNARegressor, SlideFeaturizer
from he2rna_sklearn.datasets import make_synthetic_cohort, tile_classes
from he2rna_sklearn.spatial import export_tile_scores, plot_tile_heatmap, spatial_auc

workdir = tempfile.mkdtemp()
cohort = make_synthetic_cohort(
    n_patients=20, out_dir=workdir, grid=(10, 12), random_state=5, progress=False
)
bags = SlideFeaturizer(
    backbone="resnet18", weights=None, mpp=1.0, tile_size=64, progress=False
).fit_transform(cohort.slide_paths)
patients = np.unique(cohort.patient_ids)
test = np.isin(cohort.patient_ids, patients[14:])  # six held-out patients
model = HE2RNARegressor(random_state=0)  # at its defaults: the tile-type network
model.fit([b for b, t in zip(bags, test) if not t], cohort.expression[~test])

# %%
# ROC AUC of the T-cell marker CD3E's tile scores for lymphoid tiles against all others,
# on the held-out slides.
lymphoid = cohort.class_names.index("lymphoid")
for i in np.flatnonzero(test):
    labels = tile_classes(
        bags[i].coords, bags[i].meta["extent"], cohort.class_maps[i], cohort.cell_size
    )
    if 0 < (labels == lymphoid).sum() < len(labels):
        auc = spatial_auc(model.predict_tiles(bags[i], "CD3E"), labels, lymphoid)
        print(f"{bags[i].slide_id}: AUC = {auc:.3f}")

# %%
# The heatmap of a held-out slide, a gene set (T and B cell markers, z-scored), and the
# true lymphoid regions of the same slide.
i = int(np.flatnonzero(test)[0])
fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
plot_tile_heatmap(bags[i], model.predict_tiles(bags[i], "CD3E"), label="CD3E", ax=axes[0])
plot_tile_heatmap(
    bags[i],
    model.predict_tiles(bags[i], ["CD3E", "CD8A", "MS4A1", "CD79A"]),
    label="lymphocyte gene set (mean z)",
    ax=axes[1],
)
truth = cohort.class_maps[i] == lymphoid
axes[2].imshow(np.ma.masked_where(~truth, np.ones(truth.shape)), cmap="Blues", vmin=0, vmax=1)
axes[2].set_title("ground truth: lymphoid cells (blue)")
axes[2].set_axis_off()
plt.show()

# %%
# Export the tile scores for QuPath (GeoJSON, File > Import objects) or as a table.
path = export_tile_scores(
    bags[i],
    model.predict_tiles(bags[i])[:, :3],
    f"{workdir}/tiles.geojson",
    names=model.gene_names_[:3],
)
print(path)
