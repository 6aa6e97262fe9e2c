"""A features folder exported in another tool's layout: TRIDENT, CLAM or STAMP.

:func:`export_features` writes the slides of a feature index (:mod:`._index`) as each tool
writes them, one file per slide named by the slide file's stem, with the tool's own tables
(CLAM's ``dataset.csv``, STAMP's ``slide_table.csv``); the writers of single files are
:func:`write_trident_h5`, :func:`write_clam_files` and :func:`write_stamp_h5`. The layouts'
facts are in :mod:`._interop`, which reads these tools' files.
"""

from __future__ import annotations

import os
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from .._io import atomic_write
from ..slides import lookup_slide_mpp
from ._index import read_index
from ._interop import coords_attrs
from ._store import read_bag

__all__ = [
    "EXPORT_LAYOUTS",
    "export_facts",
    "export_features",
    "safe_name",
    "trident_folder",
    "write_clam_files",
    "write_stamp_h5",
    "write_trident_h5",
]


# -- one slide's files in a tool's layout ---------------------------------------------------
#: Written on every exported file (HDF5 attribute), so that a re-export may replace it.
EXPORTED_BY = "he2rna-sklearn export"


def export_facts(bag, path):
    """What an export needs of a bag: level-0 pixel coordinates and the tile geometry.

    Returns
    -------
    facts : dict
        ``coords`` (n, 2) int64 level-0 pixels, ``extent`` (tile side, level-0 px),
        ``tile_size`` (px at ``mpp``), ``mpp``, ``slide_mpp`` (µm per pixel of the tiles
        and of level 0), ``encoder`` (the backbone's name, or "unknown").
    """
    meta = bag.meta
    if bag.coords is None:
        raise ValueError(
            f"'{path}' has no tile coordinates (a .pt file?): TRIDENT, CLAM's h5_files and "
            "STAMP need them; export the feature files that have them."
        )
    unit = meta.get("coords_unit") or "px"
    if unit != "px":
        fix = (
            "give the slides' µm per pixel (slide_mpp=...) to convert them"
            if unit == "um"
            else "these tools' files need level-0 pixel coordinates"
        )
        raise ValueError(
            f"The tile coordinates of '{path}' are not level-0 pixels (coords_unit "
            f"{unit!r}): {fix}."
        )
    mpp = meta.get("mpp") or (10.0 / meta["magnification"] if meta.get("magnification") else None)
    slide_mpp = meta.get("slide_mpp") or (
        10.0 / meta["level0_magnification"] if meta.get("level0_magnification") else None
    )
    facts = {
        "coords": np.asarray(bag.coords, dtype=np.int64).reshape(-1, 2),
        "extent": meta.get("extent"),
        "tile_size": meta.get("tile_size"),
        "mpp": mpp,
        "slide_mpp": slide_mpp,
        "encoder": str(meta.get("backbone") or meta.get("extractor") or "unknown"),
    }
    missing = [k for k in ("extent", "tile_size", "mpp", "slide_mpp") if not facts[k]]
    if missing:
        raise ValueError(
            f"'{path}' does not record {missing} (the tile geometry these tools' files carry); "
            "export files written by SlideFeaturizer, TRIDENT or STAMP."
        )
    facts["extent"], facts["tile_size"] = float(facts["extent"]), int(facts["tile_size"])
    facts["mpp"], facts["slide_mpp"] = float(facts["mpp"]), float(facts["slide_mpp"])
    return facts


def safe_name(name):
    """A name fit for a folder: runs of other characters become ``_``."""
    return re.sub(r"[^\w.+-]+", "_", str(name)).strip("._") or "unknown"


def _magnification(mpp):
    """TRIDENT's magnification of a resolution (10 / µm per pixel), as it names folders."""
    mag = 10.0 / float(mpp)
    return int(round(mag)) if abs(mag - round(mag)) < 1e-6 else mag


def trident_folder(facts):
    """``<mag>x_<size>px_0px_overlap/features_<encoder>``, as TRIDENT names its folders."""
    mag = _magnification(facts["mpp"])
    mag = str(mag) if isinstance(mag, int) else f"{mag:g}"
    return Path(f"{mag}x_{facts['tile_size']}px_0px_overlap") / (
        f"features_{safe_name(facts['encoder'])}"
    )


def write_trident_h5(path, features, facts, *, name, slide_dimensions=None):
    """One slide's feature file as TRIDENT writes it (``features``, ``coords`` and their
    attributes), atomically."""
    import h5py

    coords_attrs_ = {
        **coords_attrs(
            {
                "extent": facts["extent"],
                "tile_size": facts["tile_size"],
                "mpp": facts["mpp"],
                "slide_mpp": facts["slide_mpp"],
            }
        ),
        "overlap": 0,
        "name": name,
        "savetodir": os.fspath(Path(path).parent),
    }
    if slide_dimensions is not None:
        coords_attrs_["level0_width"], coords_attrs_["level0_height"] = (
            int(v) for v in slide_dimensions
        )
    with atomic_write(path) as tmp, h5py.File(tmp, "w") as fh:
        fh["features"] = np.asarray(features, dtype=np.float32)
        fh["features"].attrs.update(
            {"name": name, "savetodir": os.fspath(Path(path).parent), "encoder": facts["encoder"]}
        )
        fh["coords"] = facts["coords"]
        fh["coords"].attrs.update(coords_attrs_)
        fh.attrs["exported_by"] = EXPORTED_BY
    return Path(path)


def write_clam_files(folder, features, facts, *, name):
    """One slide as CLAM's feature extraction leaves it: ``h5_files/<name>.h5`` (features,
    int32 coords) and ``pt_files/<name>.pt`` (the features tensor), atomically."""
    import h5py
    import torch

    features = np.asarray(features, dtype=np.float32)
    h5 = Path(folder) / "h5_files" / f"{name}.h5"
    with atomic_write(h5) as tmp, h5py.File(tmp, "w") as fh:
        fh["features"] = features
        fh["coords"] = facts["coords"].astype(np.int32)
        fh["coords"].attrs.update(  # not CLAM's, but read by this package and TRIDENT
            coords_attrs({k: facts[k] for k in ("extent", "tile_size", "mpp", "slide_mpp")})
        )
        fh.attrs["exported_by"] = EXPORTED_BY
    pt = Path(folder) / "pt_files" / f"{name}.pt"
    with atomic_write(pt) as tmp:
        torch.save(torch.from_numpy(features), tmp)
    return h5, pt


def write_stamp_h5(path, features, facts):
    """One slide's feature file as STAMP writes it: ``feats``, ``coords`` in µm (top-left
    corners), ``unit="um"``, ``tile_size_um``, ``tile_size_px``, ``extractor`` and
    ``feat_type="tile"``, atomically. Features stay float32 (STAMP stores float16)."""
    import h5py

    with atomic_write(path) as tmp, h5py.File(tmp, "w") as fh:
        fh["coords"] = facts["coords"].astype(np.float64) * facts["slide_mpp"]
        fh["feats"] = np.asarray(features, dtype=np.float32)
        fh.attrs.update(
            {
                "extractor": facts["encoder"],
                "unit": "um",
                "tile_size_um": facts["extent"] * facts["slide_mpp"],
                "tile_size_px": facts["tile_size"],
                "feat_type": "tile",
                "exported_by": EXPORTED_BY,
            }
        )
    return Path(path)


# -- a features folder in a tool's layout ---------------------------------------------------
#: The layouts of :func:`export_features`.
EXPORT_LAYOUTS = ("trident", "clam", "stamp")
#: The file that marks a folder written by :func:`export_features` (it may be written again).
EXPORT_MARK = ".he2rna-export"


def _slide_mpp_by_file(index, slide_mpp=None):
    """Level-0 µm per pixel by feature file: ``slide_mpp`` (one number for all, or a
    mapping), else the index's ``slide_mpp`` column; None when neither says."""
    by_file = {}
    column = index["slide_mpp"] if "slide_mpp" in index else [""] * len(index)
    for f, value in zip(index["feature_file"], column):
        given = lookup_slide_mpp(slide_mpp, f)
        if given is None and str(value).strip():
            given = float(value)
        if given is not None:
            by_file[os.fspath(f)] = given
    return by_file or None


def _check_export_folder(out):
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ValueError(f"Export folder '{out}' is a file; an export writes a folder.")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_MARK).is_file():
        shown = sorted(p.name for p in out.iterdir())[:3]
        raise ValueError(
            f"Export folder '{out}' holds other files ({', '.join(shown)}...) that an export "
            "could overwrite: give a new or empty folder (an earlier export's is reused)."
        )


def export_features(features, out, layout, *, slide_mpp=None):
    """Write the slides of a feature index in the layout of TRIDENT, CLAM or STAMP.

    This package names its feature files ``<slide>.<spec key>.h5`` (the key tells the
    settings apart); the other tools look for plain ``<slide>.h5`` in their own folders.
    Each slide is written as the tool writes it, named by the slide file's stem:

    * ``"trident"``: ``out/<mag>x_<size>px_0px_overlap/features_<encoder>/<slide>.h5``,
      ``features`` and ``coords`` (level-0 pixels) with TRIDENT's attributes
      (``patch_size``, ``patch_size_level0``, ``level0_magnification``,
      ``target_magnification``, ...), the magnification being 10 / µm per pixel.
    * ``"clam"``: ``out/h5_files/<slide>.h5`` (``features``, int32 ``coords``),
      ``out/pt_files/<slide>.pt`` (the features tensor) and ``out/dataset.csv``
      (``case_id``, ``slide_id``, ``sample_id``; add CLAM's ``label`` column).
    * ``"stamp"``: ``out/<encoder>/<slide>.h5`` (``feats``, ``coords`` in µm, ``unit``,
      ``tile_size_um``, ``tile_size_px``, ``extractor``, ``feat_type``) and
      ``out/slide_table.csv`` (``PATIENT``, ``FILENAME``); slides without tiles are left
      out, as STAMP leaves them. Features stay float32 where STAMP stores float16.

    Parameters
    ----------
    features : str or Path
        A features folder (its ``index.csv``) or an index file.
    out : str or Path
        A new or empty folder, or one written by an earlier export.
    layout : {"trident", "clam", "stamp"}
    slide_mpp : float or dict, optional
        Level-0 µm per pixel of the slides whose coordinates are stored in µm (STAMP
        files), where the index has no ``slide_mpp`` column.

    Returns
    -------
    written : pandas.DataFrame
        ``sample_id``, ``patient_id``, ``name`` (the file stem written) and ``path`` per
        slide exported.

    Examples
    --------
    >>> from he2rna_sklearn.features import export_features
    >>> export_features("features/", "trident_job/", "trident")  # doctest: +SKIP
    """
    if layout not in EXPORT_LAYOUTS:
        raise ValueError(f"layout must be one of {list(EXPORT_LAYOUTS)}, got {layout!r}.")
    index = read_index(features)
    out = Path(out)
    _check_export_folder(out)
    names = [
        Path(p).stem if str(p).strip() else ""
        for p in (index["slide_path"] if "slide_path" in index else [""] * len(index))
    ]
    by_file = _slide_mpp_by_file(index, slide_mpp)
    bags = []
    for i, f in enumerate(index["feature_file"]):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # µm without slide_mpp: refused by export_facts
            bag = read_bag(f, lazy=True, slide_mpp=by_file)
        names[i] = names[i] or str(bag.slide_id)
        bags.append(bag)
    dup = pd.Series(names)[pd.Series(names).duplicated()]
    if len(dup):
        raise ValueError(
            f"Two slides of '{features}' are named '{dup.iloc[0]}' (the slide file's stem, which "
            f"names the exported files): export them into two folders."
        )
    facts = [export_facts(bag, f) for bag, f in zip(bags, index["feature_file"])]
    out.mkdir(parents=True, exist_ok=True)
    (out / EXPORT_MARK).write_text("written by he2rna export; a later export may overwrite\n")
    rows = []
    for (_, row), bag, fact, name in zip(index.iterrows(), bags, facts, names):
        features_array = np.asarray(bag)
        if layout == "trident":
            path = out / trident_folder(fact) / f"{name}.h5"
            dims = _slide_dimensions(row.get("slide_path"), fact["slide_mpp"])
            write_trident_h5(path, features_array, fact, name=name, slide_dimensions=dims)
        elif layout == "clam":
            path, _ = write_clam_files(out, features_array, fact, name=name)
        else:
            if not bag.n_tiles:
                continue
            path = out / safe_name(fact["encoder"]) / f"{name}.h5"
            write_stamp_h5(path, features_array, fact)
        rows.append(
            {
                "sample_id": row["sample_id"],
                "patient_id": row["patient_id"],
                "name": name,
                "path": os.fspath(path),
            }
        )
    written = pd.DataFrame(rows, columns=["sample_id", "patient_id", "name", "path"])
    if layout == "clam":
        table = written.rename(columns={"patient_id": "case_id", "name": "slide_id"})
        _write_csv(table[["case_id", "slide_id", "sample_id"]], out / "dataset.csv")
    elif layout == "stamp":
        table = pd.DataFrame(
            {"PATIENT": written["patient_id"], "FILENAME": [f"{n}.h5" for n in written["name"]]}
        )
        _write_csv(table, out / "slide_table.csv")
    return written


def _slide_dimensions(slide_path, slide_mpp):
    """The slide's level-0 (width, height), if its file is here to read (TRIDENT records
    them); else None."""
    from ..slides import SlideReader

    if not slide_path or not Path(slide_path).is_file():
        return None
    try:
        with SlideReader(slide_path, slide_mpp) as reader:
            return reader.dimensions
    except (OSError, ValueError):
        return None


def _write_csv(table, path):
    with atomic_write(path) as tmp:
        table.to_csv(tmp, index=False)
