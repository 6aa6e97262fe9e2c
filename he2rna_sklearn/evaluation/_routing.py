"""Metadata routing made easy: which fit parameters carry ``groups`` to the steps that use it."""

from __future__ import annotations

__all__ = ["fit_params_for"]


def fit_params_for(estimator, **metadata):
    """The fit parameters that route ``metadata`` to the steps of ``estimator`` that take it.

    With scikit-learn's metadata routing enabled (``sklearn.set_config(
    enable_metadata_routing=True)``), the estimator receives the metadata it requests (a
    Pipeline routes it to its steps). Without routing, a Pipeline gets ``<step>__<name>``
    for each step whose ``fit`` has that parameter, and a plain estimator gets ``<name>`` if
    its ``fit`` has it. Metadata nobody takes, and metadata that is None, is not passed.
    :func:`cross_validate_genes`, ``he2rna fit`` and the benchmarks fit models this way.

    Parameters
    ----------
    estimator : estimator
        E.g. ``make_pipeline(SuperTiles(), HE2RNARegressor())``.
    **metadata
        E.g. ``groups=patient_ids`` (HE2RNA's early-stopping split is by patient).

    Returns
    -------
    params : dict
        Keyword arguments for ``estimator.fit``.

    Examples
    --------
    >>> from sklearn.pipeline import make_pipeline
    >>> from he2rna_sklearn import HE2RNARegressor, SuperTiles
    >>> from he2rna_sklearn.evaluation import fit_params_for
    >>> model = make_pipeline(SuperTiles(), HE2RNARegressor())
    >>> list(fit_params_for(model, groups=["p1", "p1", "p2"]))
    ['he2rnaregressor__groups']
    """
    from sklearn import get_config
    from sklearn.pipeline import Pipeline
    from sklearn.utils.metadata_routing import get_routing_for_object
    from sklearn.utils.validation import has_fit_parameter

    metadata = {k: v for k, v in metadata.items() if v is not None}
    if get_config().get("enable_metadata_routing", False):
        consumed = get_routing_for_object(estimator).consumes("fit", list(metadata))
        return {k: v for k, v in metadata.items() if k in consumed}
    if isinstance(estimator, Pipeline):
        return {
            f"{name}__{key}": value
            for name, step in estimator.steps
            if step not in (None, "passthrough")
            for key, value in metadata.items()
            if has_fit_parameter(step, key)
        }
    return {k: v for k, v in metadata.items() if has_fit_parameter(estimator, k)}
