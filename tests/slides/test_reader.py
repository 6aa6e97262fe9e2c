import numpy as np
import pytest
from PIL import Image

from he2rna_sklearn.exceptions import MissingMPPError, SlideReadError
from he2rna_sklearn.slides import SlideReader, lookup_slide_mpp, plan_geometry, slide_fingerprint

from ..conftest import CMU_SVS, SHARED


def test_reads_real_svs_metadata():
    with SlideReader(CMU_SVS) as reader:
        assert reader.dimensions == (2220, 2967)
        assert reader.mpp == pytest.approx(0.499)
        assert reader.level_count == 1
        region = reader.read_region((100, 200), 0, (64, 32))
        assert region.mode == "RGB" and region.size == (64, 32)


def test_region_outside_slide_is_white():
    with SlideReader(CMU_SVS) as reader:
        arr = np.asarray(reader.read_region((2200, 2950), 0, (64, 64)))
    assert (arr[-10:, -10:] == 255).all()


def test_thumbnail_reports_its_downsample():
    with SlideReader(CMU_SVS) as reader:
        thumb, (dx, dy) = reader.thumbnail(8.0)
    assert thumb.shape[2] == 3
    assert dx == pytest.approx(2220 / thumb.shape[1])
    assert dy == pytest.approx(2967 / thumb.shape[0])
    assert dx == pytest.approx(8.0 / 0.499, rel=0.02)


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.svs"):
        SlideReader(tmp_path / "nope.svs")


@pytest.mark.filterwarnings("ignore:Corrupt EXIF")
def test_truncated_svs_gives_clear_error(tmp_path):
    data = CMU_SVS.read_bytes()
    bad = tmp_path / "truncated.svs"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(SlideReadError, match="truncated.svs"):
        SlideReader(bad)


def test_not_a_slide_gives_clear_error(tmp_path):
    bad = tmp_path / "notes.svs"
    bad.write_text("this is not an image")
    with pytest.raises(SlideReadError, match="notes.svs"):
        SlideReader(bad)


def test_plain_image_needs_slide_mpp(tmp_path):
    png = tmp_path / "tile.png"
    Image.new("RGB", (300, 200), (200, 100, 150)).save(png)
    with pytest.raises(MissingMPPError, match="slide_mpp"):
        SlideReader(png)
    with SlideReader(png, slide_mpp=0.5) as reader:
        assert reader.mpp == 0.5
        assert reader.dimensions == (300, 200)


def test_user_mpp_overrides_metadata():
    with SlideReader(CMU_SVS, slide_mpp=0.25) as reader:
        assert reader.mpp == 0.25


def test_lookup_slide_mpp_by_path_name_or_stem():
    assert lookup_slide_mpp(None, "a/b.svs") is None
    assert lookup_slide_mpp(0.3, "a/b.svs") == 0.3
    assert lookup_slide_mpp({"b.svs": 0.4}, "a/b.svs") == 0.4
    assert lookup_slide_mpp({"b": 0.6}, "a/b.svs") == 0.6
    assert lookup_slide_mpp({"c": 0.6}, "a/b.svs") is None


def test_fingerprint_follows_content(tmp_path):
    a = tmp_path / "a.bin"
    a.write_bytes(b"x" * 5000)
    first = slide_fingerprint(a)
    assert slide_fingerprint(a) == first
    a.write_bytes(b"x" * 4999 + b"y")
    assert slide_fingerprint(a) != first


@pytest.mark.skipif(not (SHARED / "slides").exists(), reason="../shared data not beside checkout")
def test_other_real_formats():
    with SlideReader(SHARED / "slides" / "camelyon-lowres.dcm") as dicom:
        assert dicom.dimensions == (1152, 700) and dicom.mpp == pytest.approx(28.969, rel=1e-3)
        assert np.asarray(dicom.read_region((0, 0), 0, (32, 32))).shape == (32, 32, 3)
    with SlideReader(SHARED / "slides" / "fluorescence-dapi.ndpi") as ndpi:
        assert ndpi.level_count == 7 and ndpi.mpp == pytest.approx(0.228, rel=1e-2)
        g = plan_geometry(ndpi, 2.0, 64)  # 2 µm/px from a 0.23 µm/px scan: level 3 (8x)
        assert ndpi.level_downsamples[g.level] == pytest.approx(8.0)
    with pytest.raises(SlideReadError, match="he-no-imagetype.dcm"):
        SlideReader(SHARED / "slides" / "he-no-imagetype.dcm")


def _edit_middle(path, data):
    """Overwrite a few bytes in the middle of a file and restore its mtime."""
    import os

    stat = path.stat()
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size // 2)
        fh.write(data)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_fingerprint_covers_the_middle_of_large_files(tmp_path):
    big = tmp_path / "big.svs"
    big.write_bytes(np.random.default_rng(0).bytes(5 << 20))  # beyond first + last MiB
    first = slide_fingerprint(big)
    _edit_middle(big, b"changed")
    assert slide_fingerprint(big) != first


def test_remembered_fingerprint_is_not_fooled_by_a_restored_mtime(tmp_path):
    big = tmp_path / "big.svs"
    big.write_bytes(np.random.default_rng(0).bytes(3 << 20))
    memo = tmp_path / "memo"
    first = slide_fingerprint(big, memo_dir=memo)
    assert len(list(memo.glob("*.json"))) == 1
    assert slide_fingerprint(big, memo_dir=memo) == first  # remembered
    _edit_middle(big, b"changed")
    assert slide_fingerprint(big, memo_dir=memo) == slide_fingerprint(big) != first


def test_directory_is_not_a_slide(tmp_path):
    with pytest.raises(IsADirectoryError, match="is a directory"):
        SlideReader(tmp_path)
    with pytest.raises(IsADirectoryError, match="is a directory"):
        slide_fingerprint(tmp_path)
