"""Cohort-scale featurization on a Dask cluster, one task per slide."""

import os
import signal
import threading
import time
from pathlib import Path

import joblib
import numpy as np
import pytest

from he2rna_sklearn import SlideFeaturizer

from ..conftest import SlowTransform

distributed = pytest.importorskip("distributed")


def _featurizer(cache_dir, delay=0.0):
    return SlideFeaturizer(
        backbone="mobilenet_v3_small",
        weights=None,
        mpp=0.5,
        tile_size=64,
        cache_dir=cache_dir,
        lazy=True,
        n_jobs=-1,
        progress=False,
        tile_transform=SlowTransform(delay) if delay else None,
    )


@pytest.fixture
def client():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        with distributed.Client(cluster) as client:
            yield client


def _mtimes(folder):
    return {p.name: p.stat().st_mtime_ns for p in folder.glob("*.h5")}


@pytest.mark.slow
def test_cohort_on_dask_survives_a_killed_worker_without_redoing_slides(
    tiny_cohort, tmp_path, client
):
    paths = tiny_cohort.slide_paths[:8]
    cache = tmp_path / "features"
    result = {}

    def run():
        try:
            with joblib.parallel_config(backend="dask"):
                result["bags"] = _featurizer(cache, delay=0.005).transform(paths)
        except Exception as exc:
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    deadline = time.time() + 120
    while len(_mtimes(cache)) < 2 and time.time() < deadline:
        time.sleep(0.05)
    finished_before_kill = _mtimes(cache)
    busy = [w for w, tasks in client.processing().items() if tasks]
    assert len(finished_before_kill) >= 2 and busy
    pid = client.run(os.getpid, workers=busy[:1])[busy[0]]
    os.kill(pid, signal.SIGKILL)  # a worker dies in the middle of a slide

    thread.join(timeout=300)
    assert not thread.is_alive(), "the run did not finish after the worker was killed"
    assert "error" not in result, result.get("error")
    bags = result["bags"]
    assert [b.slide_id for b in bags] == [Path(p).stem for p in paths]  # input order
    after = _mtimes(cache)
    assert len(after) == len(paths)
    for name, mtime in finished_before_kill.items():
        assert after[name] == mtime  # slides finished before the kill were not redone

    with joblib.parallel_config(backend="dask"):  # a rerun finds everything done
        again = _featurizer(cache, delay=0.005).transform(paths)
    assert _mtimes(cache) == after
    sequential = _featurizer(tmp_path / "seq").set_params(n_jobs=None).transform(paths)
    for a, b, c in zip(bags, again, sequential):  # (the delay leaves features unchanged)
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
        np.testing.assert_allclose(np.asarray(a), np.asarray(c), rtol=1e-5, atol=1e-6)


def test_joblib_processes_match_sequential(tiny_cohort, tmp_path):
    paths = tiny_cohort.slide_paths[:4]
    parallel = _featurizer(tmp_path / "p").set_params(n_jobs=2).transform(paths)
    sequential = _featurizer(tmp_path / "s").set_params(n_jobs=None).transform(paths)
    assert [b.slide_id for b in parallel] == [b.slide_id for b in sequential]
    for a, b in zip(parallel, sequential):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
