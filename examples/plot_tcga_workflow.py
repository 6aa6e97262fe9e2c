"""
A TCGA-style workflow: manifest, GDC expression table, 5-fold patient CV
========================================================================

The shape of a real study: a manifest of slide files with TCGA barcodes, an expression
table as GDC and most R packages write it (genes x samples, with gene annotation columns),
featurization to one HDF5 file per slide, and the paper's protocol: 5-fold
cross-validation by patient with a per-gene report. Slides and expression here are
synthetic (the data flow is the real one); the same commands run on a TCGA download.
"""

# %%
# A manifest with TCGA-like barcodes (one slide per row, several slides per patient) and
# a genes x samples expression table keyed by RNA aliquot barcodes.
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from he2rna_sklearn.cli import main as he2rna
from he2rna_sklearn.datasets import make_synthetic_cohort
from he2rna_sklearn.plotting import plot_gene_correlations

work = Path(tempfile.mkdtemp())
cohort = make_synthetic_cohort(
    n_patients=25, out_dir=work / "slides", grid=(10, 12), random_state=3, progress=False
)
barcode = {p: f"TCGA-ZZ-{i:04d}" for i, p in enumerate(dict.fromkeys(cohort.patient_ids))}
manifest = pd.DataFrame(
    {
        "slide_path": [Path(p).relative_to(work) for p in cohort.slide_paths],
        "sample_id": [
            f"{barcode[p]}-01Z-00-DX{s[-1]}" for p, s in zip(cohort.patient_ids, cohort.slide_ids)
        ],
    }
)
manifest.to_csv(work / "manifest.csv", index=False)
expression = cohort.expression.groupby(cohort.patient_ids).first()
expression.index = [f"{barcode[p]}-01A-11R-A00Z-07" for p in expression.index]
gdc = expression.T.rename_axis("gene_name").reset_index()
gdc.insert(0, "gene_id", [f"ENSG{i:011d}" for i in range(len(gdc))])
gdc.to_csv(work / "expression.tsv.gz", sep="\t", index=False)
print(manifest.head(3).to_string(), "\n")
print(gdc.iloc[:3, :4].to_string())

# %%
# Featurize (resumable; one HDF5 file per slide plus an index), then cross-validate. The
# slide barcodes (...-01Z-00-DX1) meet their RNA aliquots (...-01A-11R-...) at the TCGA
# sample level with ``--match tcga-sample``; patients are the first 12 characters.
he2rna(
    [
        "featurize",
        "--manifest",
        str(work / "manifest.csv"),
        "--out",
        str(work / "features"),
        "--backbone",
        "resnet18",
        "--weights",
        "none",
        "--mpp",
        "1.0",
        "--tile-size",
        "64",
        "--quiet",
    ]
)
he2rna(
    [
        "evaluate",
        "--features",
        str(work / "features"),
        "--expression",
        str(work / "expression.tsv.gz"),
        "--match",
        "tcga-sample",
        "--folds",
        "5",
        "--epochs",
        "80",
        "--lr",
        "1e-3",
        "--validation-fraction",
        "0",
        "--out",
        str(work / "genes.csv"),
        "--quiet",
    ]
)

# %%
# The per-gene report: r on pooled out-of-fold predictions, one-sided p, Holm and BH.
report = pd.read_csv(work / "genes.csv", index_col="gene")
top = report.sort_values("r", ascending=False).head(10)
print(top.to_string(float_format=lambda v: f"{v:.3g}"))
plot_gene_correlations(report, correction="bh")
plt.show()
