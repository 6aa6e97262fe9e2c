"""
Bringing TRIDENT features into a cross-validated HE2RNA pipeline
================================================================

Many cohorts are featurized once with a pathology foundation model through TRIDENT, CLAM
or STAMP. Their feature files plug into HE2RNA directly: :func:`~he2rna_sklearn.load_bags`
reads them with their tile geometry, :func:`~he2rna_sklearn.features.build_index` (or
``he2rna index``) lists them for the command line, and the bags go into any scikit-learn
cross-validation.

A real run starts from TRIDENT's output, e.g. UNI features at 20x::

    python run_batch_of_slides.py --task all --wsi_dir ./wsis --job_dir ./trident_processed \\
        --patch_encoder uni_v1 --mag 20 --patch_size 256

which writes one ``<slide>.h5`` per slide in
``trident_processed/20x_256px_0px_overlap/features_uni_v1/``. So that this example runs
offline in seconds, it writes such a folder itself: small TRIDENT-layout files whose
features carry a known signal.
"""

# %%
import tempfile
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
from sklearn.pipeline import make_pipeline

from he2rna_sklearn import HE2RNARegressor, SuperTiles, load_bags
from he2rna_sklearn.evaluation import cross_validate_genes
from he2rna_sklearn.features import build_index

rng = np.random.default_rng(0)
job = Path(tempfile.mkdtemp()) / "trident_processed"
folder = job / "20x_256px_0px_overlap" / "features_uni_v1"
folder.mkdir(parents=True)

# 36 patients, one slide each; two kinds of tissue whose share drives two genes.
n_features, immune_axis, tumour_axis = 32, 0, 1
slides, expression = [], []
for i in range(36):
    name = f"TCGA-ZZ-{i:04d}-01Z-00-DX1"
    n_tiles = int(rng.integers(60, 120))
    immune, tumour = rng.uniform(0.05, 0.5), rng.uniform(0.1, 0.6)
    kind = rng.choice(3, size=n_tiles, p=[immune, tumour, 1 - immune - tumour])
    feats = rng.normal(size=(n_tiles, n_features)).astype(np.float32)
    feats[kind == 0, immune_axis] += 3.0
    feats[kind == 1, tumour_axis] += 3.0
    side = int(np.ceil(np.sqrt(n_tiles)))
    coords = np.array([(x, y) for y in range(side) for x in range(side)][:n_tiles]) * 512
    with h5py.File(folder / f"{name}.h5", "w") as fh:  # TRIDENT's layout
        fh["features"] = feats
        fh["coords"] = coords
        fh["coords"].attrs.update(
            {
                "patch_size": 256,  # pixels at target_magnification
                "patch_size_level0": 512,  # the tile side at level 0 (a 40x scan)
                "level0_magnification": 40,
                "target_magnification": 20,
            }
        )
    slides.append({"slide_path": f"/data/wsis/{name}.svs"})
    counts = np.array([200 * immune, 500 * tumour, 50.0]) * rng.lognormal(0, 0.15, 3)
    expression.append(counts)

manifest = Path(tempfile.mkdtemp()) / "slides.csv"
pd.DataFrame(slides).to_csv(manifest, index=False)

# %%
# The index: one row per slide, matched to the manifest by file stem, with TCGA patient ids
# taken from the barcodes. ``he2rna index --features FOLDER --manifest slides.csv`` writes
# the same table as ``FOLDER/index.csv``, after which ``he2rna fit``/``evaluate`` run on
# ``--features FOLDER``.
index = build_index(folder, manifest, out=folder)
print(index.drop(columns="feature_file").head())

# %%
# Bags keep TRIDENT's geometry: each tile is a 512-px square at level 0
# (``patch_size_level0``), not 256, so heatmaps land where the tiles are.
bags = load_bags(index["feature_file"])
print(bags[0], bags[0].meta["extent"], bags[0].meta["source_format"])

Y = pd.DataFrame(
    np.log10(1 + np.array(expression)),
    index=index["sample_id"],
    columns=["CD3E", "EPCAM", "NOISE"],
)

# %%
# Cross-validation by patient, with the paper's spatial super-tiles. For features from a
# foundation model, ``SuperTiles(cluster_on="features")`` clusters tiles that look alike
# wherever they lie, as SEQUOIA does with UNI features (a super-tile then stands for a kind
# of tissue rather than a region).
model = make_pipeline(
    SuperTiles(n_clusters=16, random_state=0),
    HE2RNARegressor(tile_types=32, validation_fraction=None, random_state=0),
)
result = cross_validate_genes(model, bags, Y, index["patient_id"], cv=4)
print(result.pooled[["r", "p_holm"]].round(3))
