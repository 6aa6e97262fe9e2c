import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from he2rna_sklearn import SlideFeaturizer
from he2rna_sklearn.datasets import write_pyramidal_tiff
from he2rna_sklearn.exceptions import MissingMPPError
from he2rna_sklearn.features import _slide_task

from ..conftest import CMU_SVS, SHARED


def _featurizer_for(tiny_cnn, **kwargs):
    params = dict(
        backbone=tiny_cnn, weights=None, mpp=0.5, tile_size=112, progress=False, precision="fp32"
    )
    params.update(kwargs)
    return SlideFeaturizer(**params)


def test_real_svs_gives_bag_inside_slide(tiny_cnn):
    [bag] = _featurizer_for(tiny_cnn).fit_transform([CMU_SVS])
    assert bag.n_tiles > 20 and bag.n_features == 16
    extent = bag.meta["extent"]
    assert extent == pytest.approx(112 * 0.5 / 0.499)
    assert (bag.coords >= 0).all()
    assert (bag.coords[:, 0] + extent <= 2220 + 1e-6).all()
    assert (bag.coords[:, 1] + extent <= 2967 + 1e-6).all()
    assert np.isfinite(np.asarray(bag)).all()
    assert bag.slide_id == "cmu-1-small-region"
    assert bag.meta["backbone"] == "module:TinyCNN"


def test_resnet18_on_real_svs():
    feat = SlideFeaturizer(
        backbone="resnet18", weights=None, mpp=1.0, tile_size=64, max_tiles=12, progress=False
    )
    [bag] = feat.transform([CMU_SVS])
    assert bag.shape == (12, 512)
    assert bag.meta["weights"] == "random-init(seed=0)"


@pytest.mark.parametrize("precision", ["bf16", "auto"])
def test_user_module_is_left_as_it_was(tiny_cnn, precision):
    """bf16 on the CPU runs the backbone with bfloat16 channels-last weights: those of a
    copy, never of the user's module, which keeps its dtype, values, layout and mode, so a
    second featurizer on it works and records the same weights id."""
    import torch

    from he2rna_sklearn.features import build_backbone

    from ..conftest import TinyCNN

    tiny_cnn.train()
    before = {k: v.clone() for k, v in tiny_cnn.state_dict().items()}
    bags = [
        _featurizer_for(tiny_cnn, mpp=1.0, max_tiles=8, precision=precision).transform([CMU_SVS])[0]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(np.asarray(bags[0]), np.asarray(bags[1]))
    assert np.isfinite(np.asarray(bags[0])).all()
    assert bags[0].meta["weights"] == bags[1].meta["weights"]
    assert bags[0].meta["weights"] == build_backbone(TinyCNN(), None).weights_id
    after = tiny_cnn.state_dict()
    assert list(after) == list(before)
    for key, value in after.items():
        assert value.dtype == torch.float32 and value.is_contiguous(), key
        assert torch.equal(value, before[key]), key
    assert all(m.training for m in tiny_cnn.modules())


def test_deterministic_and_in_input_order(tiny_cohort, tiny_cnn):
    paths = tiny_cohort.slide_paths[:3]
    feat = _featurizer_for(tiny_cnn, mpp=1.0)
    a = feat.transform(paths)
    b = feat.transform(paths[::-1])[::-1]
    assert [x.slide_id for x in a] == [x.slide_id for x in b]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        np.testing.assert_array_equal(x.coords, y.coords)


def test_cache_is_reused_and_keyed_by_parameters(tiny_cohort, tiny_cnn, tmp_path, monkeypatch):
    paths = tiny_cohort.slide_paths[:2]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path)
    first = feat.transform(paths)
    files = sorted(tmp_path.glob("*.h5"))
    assert len(files) == 2

    def fail(*args, **kwargs):
        raise AssertionError("cached slides must not be featurized again")

    monkeypatch.setattr(_slide_task, "extract_features", fail)
    again = feat.transform(paths)
    np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(first[0]))
    np.testing.assert_array_equal(again[1].coords, first[1].coords)
    monkeypatch.undo()
    feat.set_params(tile_size=96).transform(paths)
    assert len(sorted(tmp_path.glob("*.h5"))) == 4  # a parameter change writes new files


def test_max_tiles(tiny_cohort, tiny_cnn):
    paths = tiny_cohort.slide_paths[:1]
    [full] = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64).transform(paths)
    [bag] = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64, max_tiles=5).transform(paths)
    assert full.n_tiles > 5 and bag.n_tiles == 5
    assert {tuple(c) for c in bag.coords} <= {tuple(c) for c in full.coords}


def test_blank_slide_warns_and_gives_empty_bag(tmp_path, tiny_cnn):
    path = write_pyramidal_tiff(
        tmp_path / "blank.tiff", np.full((600, 600, 3), 242, dtype=np.uint8), 0.5
    )
    with pytest.warns(UserWarning, match="No tissue"):
        [bag] = _featurizer_for(tiny_cnn).transform([path])
    assert bag.shape == (0, 16)


def test_missing_mpp_asks_for_slide_mpp(tmp_path, tiny_cnn):
    png = tmp_path / "he.png"
    rng = np.random.default_rng(0)
    img = np.full((400, 400, 3), 240, dtype=np.uint8)
    purple = np.array([170, 80, 140])
    img[50:350, 50:350] = np.clip(purple + rng.normal(0, 15, size=(300, 300, 3)), 0, 255)
    Image.fromarray(img).save(png)
    with pytest.raises(MissingMPPError, match="slide_mpp"):
        _featurizer_for(tiny_cnn).transform([png])
    [bag] = _featurizer_for(tiny_cnn, slide_mpp={"he.png": 0.5}).transform([png])
    assert bag.n_tiles >= 1


def test_input_errors(tiny_cnn, tmp_path):
    feat = _featurizer_for(tiny_cnn)
    with pytest.raises(TypeError, match="list"):
        feat.transform(str(CMU_SVS))
    with pytest.raises(FileNotFoundError, match="absent.svs"):
        feat.transform([tmp_path / "absent.svs"])
    with pytest.raises(ValueError, match="twice"):
        feat.transform([CMU_SVS, CMU_SVS])


def test_clone_and_params(tiny_cnn):
    feat = SlideFeaturizer(mpp=1.0, cache_dir="x")
    copy = clone(feat)
    assert copy.get_params() == feat.get_params()
    with pytest.raises(ValueError, match="mpp"):
        SlideFeaturizer(mpp=-1).fit()


def test_magnification_is_an_alternative_to_mpp(tiny_cnn):
    a = _featurizer_for(tiny_cnn, mpp=None, magnification=20).transform([CMU_SVS])[0]
    b = _featurizer_for(tiny_cnn, mpp=0.5).transform([CMU_SVS])[0]
    assert a.meta["extent"] == b.meta["extent"]
    np.testing.assert_array_equal(a.coords, b.coords)
    with pytest.raises(ValueError, match="not both"):
        _featurizer_for(tiny_cnn, mpp=0.5, magnification=20).fit()


def test_user_tissue_mask_array_and_image(tiny_cnn, tmp_path):
    mask = np.zeros((30, 20), dtype=bool)
    mask[:15, :10] = True  # the top-left quarter only
    [bag] = _featurizer_for(tiny_cnn, tissue_masks={"cmu-1-small-region": mask}).transform(
        [CMU_SVS]
    )
    centers = bag.coords + bag.meta["extent"] / 2
    assert len(bag.coords) and (centers[:, 0] < 1110).all() and (centers[:, 1] < 1484).all()
    png = tmp_path / "mask.png"
    Image.fromarray(mask.astype(np.uint8) * 255).save(png)
    [again] = _featurizer_for(tiny_cnn, tissue_masks={str(CMU_SVS): png}).transform([CMU_SVS])
    np.testing.assert_array_equal(again.coords, bag.coords)


def _inside(coords, extent, box):
    x0, y0, x1, y1 = box
    x, y = coords[:, 0], coords[:, 1]
    return (x >= x0) & (y >= y0) & (x + extent <= x1) & (y + extent <= y1)


def test_pen_marks_are_tiled_only_when_kept(tiny_cnn, pen_slide):
    """A blue marker stroke on the glass is left out of the automatic mask by default, and
    taken for tissue with exclude_pen_marks=False."""
    from he2rna_sklearn.slides import AUTO_TISSUE_MASK, AUTO_TISSUE_MASK_PEN_MARKS_KEPT

    path, tissue, stroke = pen_slide
    feat = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64)
    assert feat.get_params()["exclude_pen_marks"] is True
    [left_out] = feat.transform([path])
    [kept] = clone(feat).set_params(exclude_pen_marks=False).transform([path])
    extent = left_out.meta["extent"]
    assert left_out.n_tiles == 6 and _inside(left_out.coords, extent, tissue).all()
    assert kept.n_tiles == 14 and _inside(kept.coords, extent, stroke).sum() == 8
    assert left_out.meta["tissue_mask"] == AUTO_TISSUE_MASK
    assert kept.meta["tissue_mask"] == AUTO_TISSUE_MASK_PEN_MARKS_KEPT
    with pytest.raises(ValueError, match="exclude_pen_marks"):
        clone(feat).set_params(exclude_pen_marks="no").fit()


def test_pen_mark_setting_keys_the_cache(tiny_cnn, pen_slide, tmp_path, monkeypatch):
    """Features cached with pen marks left out are never served with them kept (nor the
    reverse): each setting has its own file, and a file of the other setting put under
    this one's name is recomputed."""
    path = pen_slide[0]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64, cache_dir=tmp_path)
    keep = clone(feat).set_params(exclude_pen_marks=False)
    [left_out] = feat.transform([path])
    [kept] = keep.transform([path])
    assert (left_out.n_tiles, kept.n_tiles) == (6, 14)
    assert kept.meta["spec_key"] != left_out.meta["spec_key"]
    assert len(list(tmp_path.glob("*.h5"))) == 2

    def fail(*args, **kwargs):
        raise AssertionError("cached slides must not be featurized again")

    monkeypatch.setattr(_slide_task, "extract_features", fail)
    for featurizer, bag in ((feat, left_out), (keep, kept)):  # each served its own file
        np.testing.assert_array_equal(featurizer.transform([path])[0].coords, bag.coords)
    monkeypatch.undo()
    os.replace(left_out.meta["feature_file"], kept.meta["feature_file"])
    with pytest.warns(UserWarning, match=r"other settings \(tissue_mask\); recomputing"):
        [again] = keep.transform([path])
    np.testing.assert_array_equal(again.coords, kept.coords)


def test_tile_transform_changes_features_and_cache_key(tiny_cnn, tmp_path):
    from he2rna_sklearn.features import ReinhardNormalizer

    reference = np.full((32, 32, 3), (120, 60, 160), dtype=np.uint8)
    reference[::2] = (200, 150, 210)
    norm = ReinhardNormalizer().fit(reference)
    plain = _featurizer_for(tiny_cnn, cache_dir=tmp_path, max_tiles=8)
    [a] = plain.transform([CMU_SVS])
    [b] = clone(plain).set_params(tile_transform=norm).transform([CMU_SVS])
    assert not np.allclose(np.asarray(a), np.asarray(b))
    assert len(list(tmp_path.glob("*.h5"))) == 2


def test_bad_slides_raise_or_are_skipped(tiny_cnn, tmp_path):
    from he2rna_sklearn.exceptions import SlideReadError

    truncated = tmp_path / "truncated.svs"
    data = CMU_SVS.read_bytes()
    truncated.write_bytes(data[: len(data) // 3])
    paths = [truncated, CMU_SVS, tmp_path / "missing.svs"]
    dicom = SHARED / "slides" / "he-no-imagetype.dcm"
    if dicom.exists():  # a real DICOM that OpenSlide refuses
        paths.append(dicom)
    with pytest.raises(SlideReadError, match="truncated.svs"):
        _featurizer_for(tiny_cnn).transform(paths)
    feat = _featurizer_for(tiny_cnn, on_error="skip", max_tiles=4)
    with pytest.warns(UserWarning, match="failed and were skipped"):
        bags = feat.transform(paths)
    assert bags[0] is None and bags[1].n_tiles == 4 and bags[2] is None
    assert set(feat.failed_slides_) == {str(p) for p in paths} - {str(CMU_SVS)}
    assert "SlideReadError" in feat.failed_slides_[str(truncated)]
    if dicom.exists():
        assert bags[3] is None and "image flavor" in feat.failed_slides_[str(dicom)]


def test_empty_slide_can_raise(tmp_path, tiny_cnn):
    path = write_pyramidal_tiff(
        tmp_path / "blank.tiff", np.full((600, 600, 3), 242, dtype=np.uint8), 0.5
    )
    with pytest.raises(ValueError, match="No tissue tiles.*blank.tiff"):
        _featurizer_for(tiny_cnn, on_empty="raise").transform([path])


def test_interrupted_run_resumes_without_redoing_slides(
    tiny_cohort, tiny_cnn, tmp_path, monkeypatch
):
    paths = tiny_cohort.slide_paths[:3]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path)
    calls = []
    real = _slide_task.extract_features

    class Killed(BaseException):
        """Stands for the process being killed (not an Exception: never skipped)."""

    crash = [True]

    def crash_on_second(dataset, *args, **kwargs):
        calls.append(dataset.path)
        if crash[0] and len(calls) == 2:
            raise Killed  # the run dies while featurizing slide 2
        return real(dataset, *args, **kwargs)

    monkeypatch.setattr(_slide_task, "extract_features", crash_on_second)
    with pytest.raises(Killed):
        feat.transform(paths)
    assert len(list(tmp_path.glob("*.h5"))) == 1 and not list(tmp_path.glob("*.tmp"))
    calls.clear()
    crash[0] = False
    bags = feat.transform(paths)
    assert calls == paths[1:]  # only the unfinished slides
    assert all(b.n_tiles for b in bags)


def test_workers_give_the_same_features(tiny_cohort, tiny_cnn):
    paths = tiny_cohort.slide_paths[:1]
    [a] = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64).transform(paths)
    [b] = _featurizer_for(tiny_cnn, mpp=1.0, tile_size=64, num_workers=2, batch_size=8).transform(
        paths
    )
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_timm_backbone():
    pytest.importorskip("timm")
    feat = SlideFeaturizer(
        backbone="timm:resnet18", weights=None, mpp=1.0, tile_size=64, max_tiles=4, progress=False
    )
    [bag] = feat.transform([CMU_SVS])
    assert bag.shape == (4, 512) and bag.meta["backbone"] == "timm:resnet18"


def test_lazy_bags_stay_on_disk(tiny_cnn, tmp_path):
    from he2rna_sklearn.features._store import H5Array

    [lazy] = _featurizer_for(tiny_cnn, cache_dir=tmp_path, lazy=True).transform([CMU_SVS])
    [eager] = _featurizer_for(tiny_cnn, cache_dir=tmp_path).transform([CMU_SVS])
    assert isinstance(lazy.features, H5Array) and isinstance(eager.features, np.ndarray)
    np.testing.assert_array_equal(np.asarray(lazy), np.asarray(eager))
    with pytest.raises(ValueError, match="cache_dir"):
        _featurizer_for(tiny_cnn, lazy=True).fit()


# -- the cache never serves a wrong bag (issue 13) ---------------------------------------
def _cache_files(folder):
    return {p.name.split(".")[0]: p for p in folder.glob("*.h5")}


def test_swapped_cache_file_is_never_served(tiny_cohort, tiny_cnn, tmp_path):
    paths = tiny_cohort.slide_paths[:2]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path)
    first = feat.transform(paths)
    files = _cache_files(tmp_path)
    a, b = (first[0].slide_id, first[1].slide_id)
    files[a].write_bytes(files[b].read_bytes())  # slide b's file under slide a's name
    with pytest.warns(UserWarning, match=f"another slide \\({b}"):
        again = feat.transform(paths)
    assert again[0].slide_id == a
    np.testing.assert_array_equal(np.asarray(again[0]), np.asarray(first[0]))
    np.testing.assert_array_equal(again[0].coords, first[0].coords)


def test_truncated_cache_file_is_recomputed_with_a_warning(tiny_cohort, tiny_cnn, tmp_path):
    paths = tiny_cohort.slide_paths[:1]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path)
    [first] = feat.transform(paths)
    [file] = tmp_path.glob("*.h5")
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])
    with pytest.warns(UserWarning, match="cannot be used.*recomputing"):
        [again] = feat.transform(paths)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))
    [bag] = feat.transform(paths)  # and the rewritten file is sound
    assert bag.n_tiles == first.n_tiles


def test_altered_cache_values_are_recomputed(tiny_cohort, tiny_cnn, tmp_path):
    import h5py

    paths = tiny_cohort.slide_paths[:1]
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path)
    [first] = feat.transform(paths)
    [file] = tmp_path.glob("*.h5")
    with h5py.File(file, "r+") as fh:
        fh["features"][0, :3] = 7.0  # finite, plausible values
    with pytest.warns(UserWarning, match="checksum"):
        [again] = feat.transform(paths)
    np.testing.assert_array_equal(np.asarray(again), np.asarray(first))


def test_slide_changed_in_place_is_featurized_again(tiny_cohort, tiny_cnn, tmp_path):
    import os
    import shutil

    slide = tmp_path / "slide.tiff"
    shutil.copy(tiny_cohort.slide_paths[0], slide)
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path / "cache")
    [first] = feat.transform([slide])
    stat = slide.stat()
    shutil.copy(tiny_cohort.slide_paths[1], slide)  # another slide's content, same name
    os.utime(slide, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # and the old mtime
    [again] = feat.transform([slide])
    assert again.n_tiles != first.n_tiles or not np.array_equal(
        np.asarray(again), np.asarray(first)
    )
    assert again.meta["slide_fingerprint"] != first.meta["slide_fingerprint"]


def test_stale_temporaries_of_dead_processes_are_removed(tiny_cohort, tiny_cnn, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        text=True,
        capture_output=True,
        check=True,
    ).stdout.strip()
    stale = tmp_path / f".SYN-0001-01.0123456789abcdef.h5.{dead}.1a2b3c4d.tmp"
    legacy = tmp_path / f".index.csv.{dead}.tmp"
    alive = tmp_path / f".other.h5.{os.getpid()}.1a2b3c4d.tmp"
    for p in (stale, legacy, alive):
        p.write_bytes(b"partial")
    _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path, max_tiles=2).transform(
        tiny_cohort.slide_paths[:1]
    )
    assert not stale.exists() and not legacy.exists()
    assert alive.exists()  # a running process's temporary is left alone


def test_directory_given_as_a_slide(tiny_cnn, tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        _featurizer_for(tiny_cnn).transform([tmp_path])


def test_n_jobs_zero_is_refused(tiny_cnn):
    with pytest.raises(ValueError, match="'n_jobs' parameter of SlideFeaturizer"):
        _featurizer_for(tiny_cnn, n_jobs=0).transform([CMU_SVS])


def test_spec_gives_the_cache_key_and_the_file_attributes(tiny_cohort, tiny_cnn, tmp_path):
    import dataclasses

    from he2rna_sklearn.features._spec import SlideSpec

    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path, max_tiles=4)
    [bag] = feat.transform(tiny_cohort.slide_paths[:1])
    spec = SlideSpec.from_json(bag.meta["spec"])
    assert spec.slide_id == bag.slide_id and spec.max_tiles == 4
    assert spec.slide_fingerprint == bag.meta["slide_fingerprint"]
    assert bag.meta["feature_file"].endswith(f".{spec.key()}.h5")
    assert bag.meta["spec_key"] == spec.key()
    for field in dataclasses.fields(SlideSpec):  # every field changes the key
        value = getattr(spec, field.name)
        other = (value or 0) + 1 if isinstance(value, (int, float)) else f"{value}x"
        assert dataclasses.replace(spec, **{field.name: other}).key() != spec.key()


_PARENT = """
import sys
from he2rna_sklearn import SlideFeaturizer
from tests.conftest import SlowTransform

SlideFeaturizer(backbone="mobilenet_v3_small", weights=None, mpp=0.5, tile_size=64,
                cache_dir=sys.argv[1], n_jobs=2, progress=False,
                tile_transform=SlowTransform(0.05)).transform(sys.argv[2:])
"""


@pytest.mark.slow
def test_joblib_workers_exit_when_the_parent_is_killed(tiny_cohort, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    psutil = pytest.importorskip("psutil")
    root = Path(__file__).resolve().parents[2]
    cache = tmp_path / "features"
    parent = subprocess.Popen(
        [sys.executable, "-c", _PARENT, str(cache), *tiny_cohort.slide_paths[:4]], cwd=root
    )
    try:
        deadline = time.time() + 120
        workers = []
        while time.time() < deadline and parent.poll() is None:
            children = psutil.Process(parent.pid).children(recursive=True)
            workers = [p for p in children if "loky" in " ".join(p.cmdline())]
            busy = list(cache.glob(".*.tmp")) if cache.exists() else []
            if len(workers) >= 2 and busy:
                break
            time.sleep(0.1)
        assert parent.poll() is None and len(workers) >= 2, "the workers did not start"
        os.kill(parent.pid, signal.SIGKILL)  # the parent dies in the middle of slides
        parent.wait()
        gone, alive = psutil.wait_procs(workers, timeout=10)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert not alive, f"orphaned workers kept running: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_long_slide_names_get_short_stable_cache_names(tiny_cohort, tiny_cnn, tmp_path):
    """A 240-character slide name: its cache name (stem + key + the temporary's additions)
    would pass the file system's 255 bytes. The name is shortened, stays the same on a rerun
    (the cache is reused) and unique; names that fit are left as they were."""
    import shutil

    long = [tmp_path / ("A" * 236 + f"-{i}.tiff") for i in range(2)]  # same first 236 chars
    for src, dst in zip(tiny_cohort.slide_paths[:2], long):
        shutil.copy(src, dst)
    short = tmp_path / "short-01.tiff"
    shutil.copy(tiny_cohort.slide_paths[2], short)
    feat = _featurizer_for(tiny_cnn, mpp=1.0, cache_dir=tmp_path / "cache")
    bags = feat.transform([*long, short])
    from he2rna_sklearn.features._spec import MAX_CACHE_NAME_BYTES  # 255 - 63 of a temporary

    names = [Path(b.meta["feature_file"]).name for b in bags]
    assert all(len(n.encode()) <= MAX_CACHE_NAME_BYTES for n in names) and len(set(names)) == 3
    assert [b.slide_id for b in bags] == [p.stem for p in (*long, short)]
    assert names[2] == f"short-01.{bags[2].meta['spec_key']}.h5"  # unchanged when it fits
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.h5")}
    again = feat.transform([*long, short])
    assert [Path(b.meta["feature_file"]).name for b in again] == names
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cache").glob("*.h5")} == before
