"""
Pretrained SEQUOIA models, offline
==================================

SEQUOIA (Pizurica et al., Nat Commun 2024) released one linearized transformer per TCGA
cancer type and fold on the Hugging Face Hub, as ``gevaertlab/sequoia-{cancer}-{fold}``.
Each takes a slide as the means of 100 k-means clusters of its UNI tile features and
predicts 20,820 genes. This example runs the whole path offline:

1. a Hugging Face cache holding five "folds" in SEQUOIA's exact layout
   (``config.json`` with its keys, ``model.safetensors`` with its tensor names), but with
   **random weights** and small dimensions, so that it runs in seconds; the real
   checkpoints are read the same way, their sizes coming from their ``config.json``;
2. bags of tile features standing in for UNI features of six slides;
3. SEQUOIA's input (:class:`~he2rna_sklearn.SuperTiles` on features, k-means label order)
   and the mean of the five folds (:func:`~he2rna_sklearn.load_sequoia`);
4. what is refused: features of another encoder, a slide with too few tiles.

The predictions below are meaningless (random weights); the mechanics are not. See
:doc:`/pretrained` for downloading the real models once.
"""

# %%
# A Hugging Face cache in SEQUOIA's layout
# ----------------------------------------
# ``hf download gevaertlab/sequoia-coad-0`` stores
# ``models--gevaertlab--sequoia-coad-0/snapshots/<commit>/`` with ``config.json`` and
# ``model.safetensors`` (and ``refs/main`` naming the commit). We write the same with
# random weights. SEQUOIA's gene names are not in the checkpoints but in
# ``examples/gene_list.csv`` of its GitHub repository; here a made-up list of the same form.
import json
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from sklearn.pipeline import make_pipeline

from he2rna_sklearn import Bag, SuperTiles, load_sequoia
from he2rna_sklearn.model import SEQUOIA_FEATURE_SPEC, SequoiaModule
from he2rna_sklearn.spatial import tile_layout

cache = Path(tempfile.mkdtemp()) / "hub"
config = {  # SEQUOIA's keys; the released models have 1024, 6, 16, 64, 64, 64, 100, 20820
    "num_outputs": 40,
    "input_dim": 32,
    "depth": 2,
    "nheads": 4,
    "dimensions_f": 16,
    "dimensions_s": 16,
    "dimensions_c": 16,
    "num_clusters": 100,
    "device": "cuda:0",
}
genes = [f"GENE{i:02d}" for i in range(config["num_outputs"])]
for fold in range(5):
    repo = cache / f"models--gevaertlab--sequoia-coad-{fold}"
    commit = f"{fold:x}" * 40
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    torch.manual_seed(fold)
    module = SequoiaModule(  # random weights under SEQUOIA's tensor names
        n_features=32,
        n_outputs=40,
        depth=2,
        n_heads=4,
        local_size=16,
        summary_size=16,
        combine_size=16,
        n_positions=100,
    )
    save_file(module.state_dict(), snapshot / "model.safetensors")
    (snapshot / "config.json").write_text(json.dumps(config))
    (snapshot / "gene_list.csv").write_text("gene\n" + "\n".join(genes) + "\n")

print(sorted(p.name for p in cache.iterdir()))
print(sorted(p.name for p in snapshot.iterdir()))
print(list(module.state_dict())[:4])

# %%
# Bags of tile features
# ---------------------
# Six slides of 300 tiles, each tile one of four tissue types, with features standing in
# for UNI's. Bags from :class:`~he2rna_sklearn.SlideFeaturizer` carry what made them in
# ``meta``; the model checks it.
rng = np.random.default_rng(0)
prototypes = rng.normal(scale=2.0, size=(4, 32))
uni_meta = {
    "backbone": "uni",
    "weights": "hf-hub:MahmoodLab/UNI@0000/pytorch_model.bin",
    "mpp": 0.5 * 256 / 224,
    "tile_size": 224,
}
bags = []
for s in range(6):
    xy = np.stack(np.meshgrid(np.arange(20), np.arange(15)), -1).reshape(-1, 2)
    tissue = (xy[:, 0] // 5 + s + (xy[:, 1] > 7)) % 4  # bands of tissue
    feats = prototypes[tissue] + rng.normal(size=(len(xy), 32))
    bags.append(
        Bag(feats.astype(np.float32), coords=xy * 224, slide_id=f"slide-{s}", meta=uni_meta)
    )

# %%
# SEQUOIA's input, and the mean of its five folds
# -----------------------------------------------
# ``load_sequoia("coad")`` reads ``gevaertlab/sequoia-coad-0`` to ``-4`` from the cache
# (here ``cache_dir``; by default ``HF_HUB_CACHE`` or ``~/.cache/huggingface/hub``) and
# finds ``gene_list.csv`` in each folder (else pass ``genes="gene_list.csv"``).
# The released models (1024-d) take UNI features by default; these 32-d ones are told so.
spec = {**SEQUOIA_FEATURE_SPEC, "n_features": 32}
sequoia = load_sequoia("coad", cache_dir=cache, feature_spec=spec)
print(sequoia.estimators_[0].feature_spec_)
model = make_pipeline(
    SuperTiles(n_clusters=100, cluster_on="features", cluster_order="kmeans", random_state=0),
    sequoia,
)
expression = pd.DataFrame(
    model.predict(bags), columns=sequoia.gene_names_, index=[b.slide_id for b in bags]
)
print(expression.iloc[:, :5].round(3))
print("slide embedding (5 folds x 32):", model.transform(bags).shape)
print("from", [m.source_ for m in sequoia.estimators_][:2], "...")

# %%
# Per-cluster maps
# ----------------
# ``predict_tiles`` gives each super-tile's share of the slide's prediction (the shares
# average to it); :func:`~he2rna_sklearn.spatial.tile_layout` paints them on the tiles.
super_tiles = model[0].transform(bags[:1])[0]
shares = sequoia.predict_tiles(super_tiles, "GENE00")
print(
    "mean of the shares:",
    shares.mean().round(4),
    "prediction:",
    expression.iloc[0]["GENE00"].round(4),
)
coords, per_tile = tile_layout(super_tiles, shares)
fig, ax = plt.subplots(figsize=(5, 3.6))
im = ax.scatter(coords[:, 0], coords[:, 1], c=per_tile, marker="s", s=40, cmap="inferno")
ax.invert_yaxis()
ax.set_title("GENE00: share of each cluster (random weights)")
ax.set_xlabel("x (px)")
ax.set_ylabel("y (px)")
fig.colorbar(im, ax=ax)
fig.tight_layout()
plt.show()

# %%
# What is refused
# ---------------
# Features of another encoder, and slides that do not give 100 clusters (SEQUOIA skips
# slides with fewer than 100 tiles), each get a one-line error naming the slide.
resnet = [
    Bag(
        np.asarray(bags[0]),
        coords=bags[0].coords,
        slide_id="slide-r",
        meta=dict(uni_meta, backbone="resnet50"),
    )
]
small = [
    Bag(np.asarray(bags[1])[:60], coords=bags[1].coords[:60], slide_id="slide-s", meta=uni_meta)
]
for name, X in [("ResNet50 features", resnet), ("60 tiles", small)]:
    try:
        model.predict(X)
    except ValueError as err:
        print(f"{name}: {err}")
