"""Training speed and memory of HE2RNARegressor.

Scenarios (issue 4):

* ``a``: 1,000 bags x 100 super-tiles x 2,048 features x 1,000 genes, in memory.
  Target on a 2-core CPU: <= 10 s per epoch.
* ``b``: 200 bags x 8,000 tiles x 2,048 features x 1,000 genes, read lazily from one HDF5
  file per bag (13 GB on disk). Target: peak RSS under 4 GB.

``--network`` picks the regressor's network: ``tile-types`` (its default) or ``paper`` (the
per-tile MLP of ``--hidden`` with top-k pooling, ``tile_types=None``).

Each scenario runs in a fresh process, so its peak RSS is its own. Seconds per epoch are
the median over epochs 2..E (the first includes warm-up). Figures depend on the machine and
its load: compare settings within one run, and always state the thread setting.

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/train.py --scenario all --epochs 3 --threads 2
    python benchmarks/train.py --scenario a --network paper --hidden 1024 1024
    python benchmarks/train.py --scenario b --scale 0.1    # a tenth of the bags, quicker
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCENARIOS = {
    "a": dict(n_bags=1000, n_tiles=100, n_features=2048, n_genes=1000, lazy=False, ks="super"),
    "b": dict(n_bags=200, n_tiles=8000, n_features=2048, n_genes=1000, lazy=True, ks="all"),
}


def _bags_on_disk(folder, n_bags, n_tiles, n_features, seed=0):
    import numpy as np

    from he2rna_sklearn.features import write_bag

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((n_tiles, n_features), dtype=np.float32)
    coords = np.zeros((n_tiles, 2), dtype=np.int64)
    paths = []
    for i in range(n_bags):
        path = folder / f"bag{i:04d}-{n_tiles}x{n_features}.h5"
        if not path.exists():
            # Cheap distinct bags: a rolled copy of one random block plus a per-bag offset.
            feats = np.roll(base, i * 37, axis=0) + np.float32(rng.normal())
            write_bag(path, feats, coords)
        paths.append(path)
    return paths


def worker(name, epochs, threads, scale, hidden, workdir, network="tile-types"):
    import numpy as np
    import torch

    from he2rna_sklearn import HE2RNARegressor, load_bags
    from he2rna_sklearn.model import KS_ALL_TILES, KS_SUPER_TILES

    torch.set_num_threads(threads)
    spec = dict(SCENARIOS[name])
    n_bags = max(16, int(spec["n_bags"] * scale))
    n_tiles, d, g = spec["n_tiles"], spec["n_features"], spec["n_genes"]
    rng = np.random.default_rng(0)
    if spec["lazy"]:
        paths = _bags_on_disk(Path(workdir) / "bags", n_bags, n_tiles, d)
        bags = load_bags(paths, lazy=True)
    else:
        block = rng.standard_normal((n_bags, n_tiles, d), dtype=np.float32)
        bags = list(block)
    y = rng.normal(size=(n_bags, g)).astype(np.float32)
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    ks = KS_ALL_TILES if spec["ks"] == "all" else KS_SUPER_TILES
    paper = dict(tile_types=None, hidden_layer_sizes=hidden, ks=ks)
    model = HE2RNARegressor(
        **(paper if network == "paper" else {}),
        max_epochs=epochs,
        validation_fraction=None,
        random_state=0,
    )
    start = time.perf_counter()
    model.fit(bags, y)
    total = time.perf_counter() - start
    durs = list(model.history_["dur"])
    steady = sorted(durs[1:])[len(durs[1:]) // 2] if len(durs) > 1 else durs[0]
    return {
        "scenario": name,
        "bags": n_bags,
        "tiles": n_tiles,
        "features": d,
        "genes": g,
        "network": network,
        "hidden": list(hidden) if network == "paper" else None,
        "threads": threads,
        "epochs": epochs,
        "s_per_epoch": round(steady, 2),
        "first_epoch_s": round(durs[0], 2),
        "fit_s": round(total, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "rss_after_data_gb": round(rss_data / 1024, 2),
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", choices=["a", "b", "all"], default="all")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the bags")
    parser.add_argument("--network", choices=["tile-types", "paper"], default="tile-types")
    parser.add_argument("--hidden", type=int, nargs="+", default=[256, 256], help="paper only")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "he2rna-bench"))
    parser.add_argument("--worker", choices=["a", "b"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        print(
            json.dumps(
                worker(
                    args.worker,
                    args.epochs,
                    args.threads,
                    args.scale,
                    tuple(args.hidden),
                    args.workdir,
                    args.network,
                )
            )
        )
        return 0
    names = ["a", "b"] if args.scenario == "all" else [args.scenario]
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    for name in names:
        cmd = [
            sys.executable,
            __file__,
            "--worker",
            name,
            "--epochs",
            str(args.epochs),
            "--threads",
            str(args.threads),
            "--scale",
            str(args.scale),
            "--workdir",
            args.workdir,
            "--network",
            args.network,
            "--hidden",
            *map(str, args.hidden),
        ]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr, file=sys.stderr)
            return out.returncode
        result = json.loads(out.stdout.strip().splitlines()[-1])
        result["OMP_WAIT_POLICY"] = env["OMP_WAIT_POLICY"]
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
