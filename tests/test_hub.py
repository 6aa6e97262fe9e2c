"""Offline resolution of Hugging Face repositories and local folders (no network)."""

import os
import subprocess
import sys

import pytest

from he2rna_sklearn._hub import (
    find_file,
    hub_cache_dir,
    parse_repo_id,
    resolve_snapshot,
    split_revision,
)
from he2rna_sklearn.exceptions import WeightsNotFoundError

COMMIT_A = "a" * 40
COMMIT_B = "b" * 40


def make_cached_repo(cache, folder_name, files, *, commit=COMMIT_A, ref=None):
    """A repository in the Hugging Face cache layout: files are blobs, snapshots symlink."""
    repo = cache / folder_name
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "blobs").mkdir(exist_ok=True)
    for name, data in files.items():
        blob = repo / "blobs" / f"{commit[:8]}-{name}"
        blob.write_bytes(data if isinstance(data, bytes) else data.encode())
        (snap / name).symlink_to(os.path.relpath(blob, snap))
    if ref is not None:
        (repo / "refs").mkdir(exist_ok=True)
        (repo / "refs" / ref).write_text(commit)
    return snap


@pytest.fixture
def env(monkeypatch):
    for name in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_cache_dir_follows_huggingface_hub_precedence(env, tmp_path):
    env.setenv("HOME", str(tmp_path / "home"))
    assert hub_cache_dir() == tmp_path / "home" / ".cache" / "huggingface" / "hub"
    env.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert hub_cache_dir() == tmp_path / "xdg" / "huggingface" / "hub"
    env.setenv("HF_HOME", str(tmp_path / "hf"))
    assert hub_cache_dir() == tmp_path / "hf" / "hub"
    env.setenv("HUGGINGFACE_HUB_CACHE", str(tmp_path / "legacy"))
    assert hub_cache_dir() == tmp_path / "legacy"
    env.setenv("HF_HUB_CACHE", str(tmp_path / "new"))
    assert hub_cache_dir() == tmp_path / "new"
    assert hub_cache_dir(tmp_path / "arg") == tmp_path / "arg"


@pytest.mark.parametrize(
    "variables", [{"HF_HOME": "hf"}, {"XDG_CACHE_HOME": "xdg", "HUGGINGFACE_HUB_CACHE": "old"}]
)
def test_cache_dir_matches_huggingface_hub(env, tmp_path, variables):
    pytest.importorskip("huggingface_hub")
    for name, value in variables.items():
        env.setenv(name, str(tmp_path / value))
    code = "from huggingface_hub import constants; print(constants.HF_HUB_CACHE)"
    theirs = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    assert os.fspath(hub_cache_dir()) == theirs


def test_repo_ids():
    assert parse_repo_id("gevaertlab/sequoia-coad-0") == "gevaertlab/sequoia-coad-0"
    assert parse_repo_id("hf-hub:MahmoodLab/UNI") == "MahmoodLab/UNI"
    assert parse_repo_id("a/b/c") is None and parse_repo_id("model.safetensors") is None


def test_pinned_snapshot_without_refs_and_case_insensitive_folder(tmp_path):
    # timm's hf-hub:MahmoodLab/uni creates this spelling; the Hub's id is MahmoodLab/UNI.
    snap = make_cached_repo(tmp_path, "models--MahmoodLab--uni", {"pytorch_model.bin": b"w"})
    found = resolve_snapshot("MahmoodLab/UNI", cache_dir=tmp_path)
    assert found.folder == snap and found.revision == COMMIT_A
    assert found.source == f"hf-hub:MahmoodLab/UNI@{COMMIT_A[:12]}"
    path, weights_id = find_file(
        "hf-hub:mahmoodlab/UNI", ["x.bin", "pytorch_model.bin"], cache_dir=tmp_path
    )
    assert path.read_bytes() == b"w"
    assert weights_id == f"hf-hub:mahmoodlab/UNI@{COMMIT_A[:12]}/pytorch_model.bin"


def test_refs_main_and_revisions(tmp_path):
    make_cached_repo(tmp_path, "models--org--m", {"config.json": "{}"}, commit=COMMIT_A)
    make_cached_repo(tmp_path, "models--org--m", {"config.json": "{}"}, commit=COMMIT_B)
    # Two snapshots and no refs/main: refused, listing them and how to pick one.
    with pytest.raises(ValueError, match=r"2 snapshots .*revision=") as err:
        resolve_snapshot("org/m", cache_dir=tmp_path)
    assert COMMIT_A in str(err.value) and COMMIT_B in str(err.value)
    assert resolve_snapshot("org/m", revision="bbbbbbb", cache_dir=tmp_path).revision == COMMIT_B
    (tmp_path / "models--org--m" / "refs").mkdir()
    (tmp_path / "models--org--m" / "refs" / "main").write_text(COMMIT_B + "\n")
    (tmp_path / "models--org--m" / "refs" / "v1").write_text(COMMIT_A)
    assert resolve_snapshot("org/m", cache_dir=tmp_path).revision == COMMIT_B
    assert resolve_snapshot("org/m", revision="v1", cache_dir=tmp_path).revision == COMMIT_A
    with pytest.raises(WeightsNotFoundError, match="Revision 'v2'"):
        resolve_snapshot("org/m", revision="v2", cache_dir=tmp_path)


def test_environment_cache_is_read_at_call_time(env, tmp_path):
    make_cached_repo(tmp_path / "hub", "models--org--m", {"config.json": "{}"}, ref="main")
    env.setenv("HF_HOME", str(tmp_path))
    assert resolve_snapshot("org/m").folder.parent.parent.parent == tmp_path / "hub"


def test_local_folder_wins_and_missing_things_say_how_to_get_them(env, tmp_path):
    env.chdir(tmp_path)
    (tmp_path / "org" / "m").mkdir(parents=True)
    assert resolve_snapshot("org/m", cache_dir=tmp_path / "empty").repo_id is None
    with pytest.raises(WeightsNotFoundError) as err:
        resolve_snapshot("gevaertlab/sequoia-coad-0", cache_dir=tmp_path / "empty")
    message = str(err.value)
    assert "\n" not in message and "hf download gevaertlab/sequoia-coad-0" in message
    assert "huggingface-cli download gevaertlab/sequoia-coad-0" in message
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(FileNotFoundError, match="neither a folder"):
        resolve_snapshot("./nowhere/at/all")
    snap = make_cached_repo(tmp_path / "c", "models--org--x", {"config.json": "{}"}, ref="main")
    with pytest.raises(WeightsNotFoundError, match="without model.safetensors"):
        resolve_snapshot("org/x", cache_dir=tmp_path / "c").file("model.safetensors")
    (snap / "config.json").unlink()  # a dangling symlink is a missing file
    (snap / "config.json").symlink_to("../../blobs/gone")
    assert resolve_snapshot("org/x", cache_dir=tmp_path / "c").find("config.json") is None


def test_spellings_of_one_repository_are_read_together(tmp_path):
    """timm's ``hf-hub:MahmoodLab/uni@<commit>`` (STAMP) and ``hf download MahmoodLab/UNI``
    cache one repository in two folders: their snapshots and refs are read as one."""
    make_cached_repo(tmp_path, "models--MahmoodLab--UNI", {"w.bin": "a"}, ref="main")
    make_cached_repo(tmp_path, "models--MahmoodLab--uni", {"w.bin": "b"}, commit=COMMIT_B)
    assert resolve_snapshot("MahmoodLab/uni", cache_dir=tmp_path).revision == COMMIT_A
    pinned = resolve_snapshot("hf-hub:MahmoodLab/UNI@bbbbbbbb", cache_dir=tmp_path)
    assert pinned.folder.parent.parent.name == "models--MahmoodLab--uni"
    assert pinned.file("w.bin").read_text() == "b"
    # Both folders naming another refs/main: refused, not picked by folder order.
    (tmp_path / "models--MahmoodLab--uni" / "refs").mkdir()
    (tmp_path / "models--MahmoodLab--uni" / "refs" / "main").write_text(COMMIT_B)
    with pytest.raises(WeightsNotFoundError, match="several spellings whose refs/main differ"):
        resolve_snapshot("MahmoodLab/UNI", cache_dir=tmp_path)


def test_timm_revision_syntax(tmp_path):
    make_cached_repo(tmp_path, "models--org--m", {"config.json": "{}"}, ref="main")
    make_cached_repo(tmp_path, "models--org--m", {"config.json": "{}"}, commit=COMMIT_B)
    assert split_revision("hf-hub:org/m@v1.0") == ("org/m", "v1.0")
    assert split_revision("org/m@") == (None, None) and split_revision("a@b") == (None, None)
    assert resolve_snapshot("hf-hub:org/m@bbbbbbb", cache_dir=tmp_path).revision == COMMIT_B
    path, weights_id = find_file("hf-hub:org/m@" + COMMIT_B, "config.json", cache_dir=tmp_path)
    assert weights_id == f"hf-hub:org/m@{COMMIT_B[:12]}/config.json"
    with pytest.raises(ValueError, match="names revision 'bbbbbbb' and revision='main'"):
        resolve_snapshot("org/m@bbbbbbb", revision="main", cache_dir=tmp_path)


def test_a_repository_cache_folder_is_resolved_as_cached(tmp_path):
    """``models--org--m`` copied out of a cache (as the docs suggest) is a repository, not a
    folder of files: its refs/main (or single snapshot) is used."""
    make_cached_repo(tmp_path, "models--org--m", {"config.json": "{}"}, ref="main")
    make_cached_repo(tmp_path, "models--org--m", {"config.json": "{}"}, commit=COMMIT_B)
    found = resolve_snapshot(tmp_path / "models--org--m")
    assert (found.repo_id, found.revision) == ("org/m", COMMIT_A)
    assert resolve_snapshot(tmp_path / "models--org--m", revision="bbbbbbb").revision == COMMIT_B
    with pytest.raises(ValueError, match="applies to a cached repository"):
        resolve_snapshot(tmp_path, revision="main")
