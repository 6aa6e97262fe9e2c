"""The slide index: manifests, index.csv written atomically and read back, build_index."""

import h5py
import pandas as pd
import pytest
import torch

from he2rna_sklearn import load_bags
from he2rna_sklearn.features import build_index, read_index

from .test_interop import GRID, _features, write_trident


@pytest.fixture
def outside_features(tmp_path):
    """A TRIDENT job folder (h5) and a CLAM pt folder with a manifest of slides."""
    root = tmp_path / "job" / "20x_256px_0px_overlap" / "features_uni_v1"
    root.mkdir(parents=True)
    names = [f"TCGA-A{i}-000{i}-01Z-00-DX1.abc" for i in range(4)]
    for i, n in enumerate(names):
        write_trident(root / f"{n}.h5", GRID * 512, _features(seed=i))
    (tmp_path / "job" / "other.txt").write_text("not a feature file")
    manifest = pd.DataFrame({"slide_path": [f"/data/slides/{n}.svs" for n in names]})
    manifest.to_csv(tmp_path / "slides.csv", index=False)
    return tmp_path, root, names


def test_build_index_from_trident_folder(outside_features):
    tmp_path, root, names = outside_features
    index = build_index(tmp_path / "job", tmp_path / "slides.csv", out=root)
    assert index["sample_id"].tolist() == [f"{n}" for n in names]
    assert index["patient_id"].tolist() == [n[:12] for n in names]
    assert (index["n_tiles"] == 12).all() and (index["n_features"] == 6).all()
    written = pd.read_csv(root / "index.csv")
    assert written["feature_file"].tolist() == [f"{n}.h5" for n in names]  # relative
    again = read_index(root)
    bags = load_bags(list(again["feature_file"]))
    assert [b.meta["extent"] for b in bags] == [512] * 4


def test_build_index_errors_and_skips(outside_features):
    tmp_path, root, names = outside_features
    extra = pd.DataFrame({"sample_id": ["S9"], "slide_path": ["/data/slides/missing.svs"]})
    pd.concat([pd.read_csv(tmp_path / "slides.csv"), extra]).to_csv(
        tmp_path / "more.csv", index=False
    )
    with pytest.raises(ValueError, match=r"1 of 5 manifest rows.*row 5.*missing"):
        build_index(root, tmp_path / "more.csv")
    with pytest.warns(UserWarning, match="left out"):
        index = build_index(root, tmp_path / "more.csv", on_missing="skip")
    assert len(index) == 4
    # Without a manifest: every file is a sample.
    assert len(build_index(root)) == 4
    # Features of two encoders in one folder.
    write_trident(root / "odd.h5", GRID * 512, _features(d=9))
    with pytest.raises(ValueError, match="different dimensions"):
        build_index(root)
    with pytest.raises(FileNotFoundError, match="nowhere"):
        build_index(tmp_path / "nowhere")


def test_build_index_prefers_h5_over_pt(tmp_path):
    write_trident(tmp_path / "s1.h5", GRID * 512, _features())
    torch.save(torch.from_numpy(_features()), tmp_path / "s1.pt")
    index = build_index(tmp_path)
    assert index["feature_file"].iloc[0].endswith("s1.h5")
    (tmp_path / "sub").mkdir()
    write_trident(tmp_path / "sub" / "s1.h5", GRID * 512, _features())
    with pytest.raises(ValueError, match="Two feature files for 's1'"):
        build_index(tmp_path)


def _featurized(tmp_path, names):
    """Slide files and the bags of their feature files, as SlideFeaturizer leaves them."""
    from he2rna_sklearn.features import read_bag, write_bag

    slides, bags = [], []
    for i, name in enumerate(names):
        (tmp_path / f"{name}.svs").write_bytes(b"slide")
        slides.append(tmp_path / f"{name}.svs")
        path = write_bag(tmp_path / "features" / f"{name}.h5", _features(seed=i), GRID * 224)
        bags.append(read_bag(path))
    return slides, bags


def test_one_index_format_from_every_writer(tmp_path, outside_features):
    from he2rna_sklearn.features import INDEX_NAME, index_from_bags, read_manifest, write_index
    from he2rna_sklearn.features._index import INDEX_COLUMNS

    slides, bags = _featurized(tmp_path, ["TCGA-AA-0001-01Z", "s2", "s3"])
    manifest = pd.DataFrame({"slide_path": slides, "site": ["a", "b", "c"]})
    manifest.to_csv(tmp_path / "slides.tsv", sep="\t", index=False)  # one reader: CSV or TSV
    manifest = read_manifest(tmp_path / "slides.tsv")
    assert manifest["patient_id"].tolist() == ["TCGA-AA-0001", "s2", "s3"]
    index = index_from_bags(manifest, [bags[0], None, bags[2]], tmp_path / "features")
    written = pd.read_csv(write_index(index, tmp_path / "features" / INDEX_NAME))
    assert list(written.columns) == [*INDEX_COLUMNS, "site"]
    assert written["feature_file"].fillna("").tolist() == ["TCGA-AA-0001-01Z.h5", "", "s3.h5"]
    assert written["n_features"].tolist() == [6, 0, 6]
    assert read_index(tmp_path / "features")["sample_id"].tolist() == ["TCGA-AA-0001-01Z", "s3"]
    # build_index writes the same columns, in the same order (less what it cannot know)
    _, root, _ = outside_features
    unknown = ("slide_path", "slide_fingerprint")
    assert list(build_index(root).columns) == [c for c in INDEX_COLUMNS if c not in unknown]


def test_write_index_keeps_relative_paths_whatever_the_working_folder(tmp_path, monkeypatch):
    from he2rna_sklearn.features import write_index

    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path / "sub")
    table = pd.DataFrame(
        {
            "sample_id": ["a", "b", "c"],
            "patient_id": ["a", "b", "c"],
            "feature_file": ["a.h5", str(tmp_path / "x" / "b.h5"), "/elsewhere/c.h5"],
        }
    )
    written = pd.read_csv(write_index(table, tmp_path))
    assert written["feature_file"].tolist() == ["a.h5", "x/b.h5", "/elsewhere/c.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.csv", "sub"]  # no temporary


def test_update_index_under_a_lock_keeps_every_concurrent_row(tmp_path):
    """Processes that add to one index at the same time: every row is kept (each merge
    reads the index as the previous writer left it)."""
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=_add_rows, args=(tmp_path, w, barrier)) for w in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    index = pd.read_csv(tmp_path / "index.csv")
    assert sorted(index["sample_id"]) == sorted(f"w{w}-{i}" for w in range(3) for i in range(8))


def _add_rows(folder, worker, barrier):
    from he2rna_sklearn.features import update_index

    barrier.wait()
    for i in range(8):
        row = {"slide_path": f"/s/w{worker}-{i}.svs", "sample_id": f"w{worker}-{i}"}
        new = pd.DataFrame([{**row, "patient_id": "p", "feature_file": f"w{worker}-{i}.h5"}])
        update_index(folder, new)


def test_export_errors(tmp_path):
    from he2rna_sklearn.features import export_features, write_index

    torch.save(torch.from_numpy(_features()), tmp_path / "a.pt")
    write_trident(tmp_path / "b.h5", GRID * 512, _features())
    for name, layout, message in (
        ("a.pt", "trident", r"a\.pt' has no tile coordinates"),
        ("b.h5", "stamp", r"b\.h5' does not record \['slide_mpp'\]"),  # TRIDENT's: ok
    ):
        index = pd.DataFrame({"sample_id": ["s"], "patient_id": ["p"], "feature_file": [name]})
        write_index(index, tmp_path / "index.csv")
        if name == "b.h5":
            export_features(tmp_path, tmp_path / "out-b", layout)  # level-0 mag is there
            with h5py.File(tmp_path / "b.h5", "r+") as fh:
                del fh["coords"].attrs["level0_magnification"]
        with pytest.raises(ValueError, match=message):
            export_features(tmp_path, tmp_path / f"out-{layout}", layout)
    with pytest.raises(ValueError, match="layout must be one of"):
        export_features(tmp_path, tmp_path / "x", "cellprofiler")
