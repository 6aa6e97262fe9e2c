"""The paper's evaluation protocol, and the baselines every model is compared with.

* :func:`cross_validate_genes`: per-gene correlations under patient-grouped CV
  (``_genes``), with per-project reports (:func:`gene_correlations_by_group`,
  :func:`merge_projects`; ``_groups``);
* :func:`compare_auc` and :func:`aggregate_by_patient`: two ROC AUCs on the same patients,
  with a bootstrap interval of their difference (``_auc``);
* :func:`tuned_linear_baseline`, :func:`ridge_baseline` and :func:`compare_to_baseline`:
  the cheap linear models of mean-pooled features, cross-validated on the same folds
  (``_baseline``), and :func:`compare_genes`: two models' out-of-fold predictions with a
  bootstrap interval of the difference (``_compare``);
* :func:`fit_params_for`: ``groups`` routed to the steps that take them (``_routing``).
"""

from ._auc import aggregate_by_patient, compare_auc
from ._baseline import (
    compare_to_baseline,
    describe_choices,
    ridge_baseline,
    tuned_linear_baseline,
)
from ._compare import compare_genes
from ._genes import cross_validate_genes
from ._groups import PAPER_PROJECT_MERGES, gene_correlations_by_group, merge_projects
from ._routing import fit_params_for

__all__ = [
    "PAPER_PROJECT_MERGES",
    "aggregate_by_patient",
    "compare_auc",
    "compare_genes",
    "compare_to_baseline",
    "cross_validate_genes",
    "describe_choices",
    "fit_params_for",
    "gene_correlations_by_group",
    "merge_projects",
    "ridge_baseline",
    "tuned_linear_baseline",
]
