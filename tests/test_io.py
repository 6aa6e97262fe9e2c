"""The shared output helpers: atomic writes, stale temporaries, output checks."""

import os
import subprocess
import sys

import pandas as pd
import pytest

from he2rna_sklearn._io import atomic_write, check_output_path, remove_stale_temporaries


def _dead_pid():
    code = "import os; print(os.getpid())"
    return int(subprocess.run([sys.executable, "-c", code], capture_output=True).stdout)


def test_atomic_write_renames_on_success(tmp_path):
    target = tmp_path / "sub" / "table.csv"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".table.csv.")
        pd.DataFrame({"a": [1]}).to_csv(tmp, index=False)
        assert not target.exists()
    assert target.read_text() == "a\n1\n"
    assert os.listdir(target.parent) == ["table.csv"]


@pytest.mark.parametrize("error", [ValueError, KeyboardInterrupt])
def test_atomic_write_leaves_nothing_on_failure(tmp_path, error):
    target = tmp_path / "model.skops"
    target.write_text("old")
    with pytest.raises(error):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise error
    assert target.read_text() == "old"  # the previous file is untouched
    assert os.listdir(tmp_path) == ["model.skops"]


def test_atomic_write_refuses_a_directory(tmp_path):
    with pytest.raises(IsADirectoryError):
        with atomic_write(tmp_path) as tmp:
            tmp.write_text("x")


def test_stale_temporaries_of_dead_processes_only(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    names = {
        "dead": f".a.h5.{dead}@somehost-1.0a1b2c3d.tmp",
        "dead_legacy": f".a.h5.{dead}.tmp",
        "dead_writer": f".b.h5.{dead}.0a1b2c3d.tmp",
        "alive": f".c.h5.{alive}.0a1b2c3d.tmp",
        "not_ours": "notes.tmp",
    }
    for name in names.values():
        (tmp_path / name).write_text("x")
    from he2rna_sklearn import _io

    # another host's temporaries may belong to a live process there: kept
    other_host = f".d.h5.{dead}@another-host.0a1b2c3d.tmp"
    (tmp_path / other_host).write_text("x")
    names["dead"] = names["dead"].replace("somehost-1", _io._HOST)
    (tmp_path / names["dead"]).write_text("x")
    removed = {p.name for p in remove_stale_temporaries(tmp_path)}
    assert removed == {names["dead"], names["dead_legacy"], names["dead_writer"]}
    left = set(os.listdir(tmp_path))
    assert {names["alive"], names["not_ours"], other_host} <= left


def test_atomic_write_cleans_stale_temporaries_of_its_target(tmp_path):
    dead = _dead_pid()
    stale = tmp_path / f".index.csv.{dead}.tmp"
    stale.write_text("partial")
    with atomic_write(tmp_path / "index.csv") as tmp:
        tmp.write_text("done")
    assert not stale.exists()


def test_check_output_path(tmp_path):
    check_output_path(tmp_path / "new" / "deeper" / "model.skops")  # creatable
    assert not (tmp_path / "new").exists()  # and nothing created
    with pytest.raises(ValueError, match="--out .* is a directory"):
        check_output_path(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="--model-out .*'.*file' is a file, not a folder"):
        check_output_path(tmp_path / "file" / "model.skops", "--model-out")
    assert os.listdir(tmp_path) == ["file"]  # the probe left nothing


def test_check_output_path_read_only(tmp_path, monkeypatch):
    import tempfile

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)  # (root may write anywhere)
    with pytest.raises(ValueError, match="--out .*cannot write in .*Permission denied"):
        check_output_path(tmp_path / "genes.csv")


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_check_output_path_where_nobody_may_write():
    with pytest.raises(ValueError, match="cannot write in '/proc'"):
        check_output_path("/proc/model.skops")
