"""Featurization throughput and memory of SlideFeaturizer.

Measured in one run, each case in a fresh process (its peak RSS is its own, workers
counted separately):

* ``model``: the backbone alone on random uint8 tiles at the featurizer's precision
  (model-only tiles/s), and plain fp32 NCHW for comparison.
* ``e2e``: SlideFeaturizer end to end (thumbnail, tissue detection, reading in DataLoader
  workers, inference) on a synthetic 20k x 20k px slide and on cmu-1-small-region.svs:
  cold (the model built and its kernels compiled for this slide) and warm (a slide within
  a cohort: the model already built), with the model-only rate of the same tiles measured
  in the same process for the ratio.
* ``rss``: peak RSS on slides of growing size with a tiny backbone (memory of the engine,
  not of the model), with the features kept on disk (``lazy=True``).
* ``vit``: a UNI-sized ViT-L/16 (the ``uni`` encoder's architecture, random weights, 1,024
  features): model-only tiles/s at the default precision (bf16 where the CPU has it) and in
  fp32, batches interleaved in one process (their ratio is of median batch times), then end
  to end on cmu-1-small-region.svs (its 47 tissue tiles at 0.5 µm/px) with the model-only
  rate of the same process.

Targets on the 2-core development machine (issue 3): end-to-end >= 90% of model-only;
ResNet50 with default settings >= 3x plain fp32 NCHW; peak RSS flat in slide size (under
2 GB for a 100k-tile slide).

Usage::

    OMP_WAIT_POLICY=PASSIVE python benchmarks/featurize.py --tiles 1024 --threads 2
    python benchmarks/featurize.py --case rss --sizes 20000 40000 70000
    OMP_WAIT_POLICY=PASSIVE python benchmarks/featurize.py --case vit --vit-tiles 64
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

HERE = Path(__file__).resolve().parent
CMU = HERE.parent / "tests" / "data" / "cmu-1-small-region.svs"


def _rss_gb():
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(own / 1024**2, 2), round(children / 1024**2, 2)


def case_model(backbone, precision, tiles, batch, threads):
    import torch

    from he2rna_sklearn.features import FeatureRunner, build_backbone

    torch.set_num_threads(threads)
    runner = FeatureRunner(build_backbone(backbone, None), device="cpu", precision=precision)
    x = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
    runner(x)  # warm-up
    n = 0
    start = time.perf_counter()
    while n < tiles:
        runner(x)
        n += batch
    dt = time.perf_counter() - start
    return {
        "case": "model",
        "backbone": backbone,
        "precision": runner.precision,
        "tiles_per_s": round(n / dt, 1),
    }


def case_model_pair(backbone, tiles, batch, threads):
    """The default precision and fp32 side by side in one process, batches interleaved, so
    that load from other processes on a shared machine hits both alike."""
    import statistics

    import torch

    from he2rna_sklearn.features import FeatureRunner, build_backbone

    torch.set_num_threads(threads)
    # Two copies of the same random weights: a bf16 runner casts its module in place.
    runners = {
        p: FeatureRunner(build_backbone(backbone, None), device="cpu", precision=p)
        for p in ("auto", "fp32")
    }
    x = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
    for runner in runners.values():
        runner(x)  # warm-up (kernel selection)
    times = {p: [] for p in runners}
    for _ in range(max(1, tiles // batch)):
        for p, runner in runners.items():
            start = time.perf_counter()
            runner(x)
            times[p].append(time.perf_counter() - start)
    out = {"case": "model-pair", "backbone": backbone, "batch": batch}
    for p, runner in runners.items():
        key = "default" if p == "auto" else p
        out[f"{key}_precision"] = runner.precision
        out[f"{key}_tiles_per_s"] = round(batch * len(times[p]) / sum(times[p]), 2)
        out[f"{key}_median_batch_tiles_per_s"] = round(batch / statistics.median(times[p]), 2)
    out["default_vs_fp32"] = round(
        statistics.median(times["fp32"]) / statistics.median(times["auto"]), 2
    )
    return out


def case_e2e(backbone, slide, tiles, batch, workers, threads, lazy, workdir, precision):
    """One process: the cold run (model built, first batch compiled), then in the same
    process the model-only rate and the warm end-to-end rate of a slide in a cohort."""
    import torch

    from he2rna_sklearn import SlideFeaturizer

    torch.set_num_threads(threads)
    feat = SlideFeaturizer(
        backbone=backbone,
        weights=None,
        mpp=0.5,
        tile_size=224,
        max_tiles=tiles,
        batch_size=batch,
        num_workers=workers,
        precision=precision,
        progress=False,
        cache_dir=workdir if lazy else None,
        lazy=lazy,
    )
    start = time.perf_counter()
    runner = feat.build_runner()
    [bag] = feat.transform([slide])
    cold = time.perf_counter() - start
    n = bag.n_tiles
    own, children = _rss_gb()
    result = {
        "case": "e2e",
        "backbone": backbone,
        "slide": Path(slide).name,
        "precision": bag.meta["precision"],
        "tiles": n,
        "workers": workers,
        "lazy": lazy,
        "cold_tiles_per_s": round(n / cold, 1),
        "peak_rss_gb": own,
        "peak_rss_worker_gb": children,
    }
    if lazy:  # a second run would only read the cache: the memory case stops here
        return result
    # Model-only on random tiles, same runner, same number of tiles and batches.
    x = torch.randint(0, 256, (batch, 3, 224, 224), dtype=torch.uint8)
    start = time.perf_counter()
    for i in range(0, n, batch):
        runner(x[: min(batch, n - i)])
    model_only = n / (time.perf_counter() - start)
    feat.build_runner = lambda: runner  # as within a cohort: the model is built once
    start = time.perf_counter()
    feat.transform([slide])
    warm = n / (time.perf_counter() - start)
    result.update(
        model_only_tiles_per_s=round(model_only, 1),
        e2e_tiles_per_s=round(warm, 1),
        e2e_over_model_only=round(warm / model_only, 3),
    )
    return result


def case_vit(args):
    """ViT-L/16 (UNI's architecture, random weights): the default precision and fp32
    interleaved in one process, then end to end on a real slide with the model-only rate
    of the same process."""
    vit, n, batch = "uni", str(args.vit_tiles), str(args.vit_batch)
    pair = _child(args, ["pair", vit, n, batch])
    print(json.dumps({**pair, "case": "vit-model"}))
    e2e = _child(args, ["e2e", vit, str(CMU), n, batch, str(args.workers), "0", "auto"])
    print(json.dumps({**e2e, "case": "vit-e2e"}))
    print(
        json.dumps(
            {
                "vit_default_vs_fp32": pair["default_vs_fp32"],
                "vit_default_precision": pair["default_precision"],
                "vit_e2e_over_model_only": e2e["e2e_over_model_only"],
            }
        )
    )


def _child(args, extra):
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        *extra,
        "--threads",
        str(args.threads),
        "--workdir",
        args.workdir,
    ]
    env = dict(os.environ, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", choices=["speed", "rss", "vit", "all"], default="speed")
    parser.add_argument("--backbone", default="resnet50")
    parser.add_argument("--tiles", type=int, default=1024, help="tiles per measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--sizes",
        type=int,
        nargs="+",
        default=[20_000, 40_000, 70_000],
        help="slide sides (px) for the rss case",
    )
    parser.add_argument(
        "--vit-tiles", type=int, default=64, help="tiles per measurement of the vit case"
    )
    parser.add_argument("--vit-batch", type=int, default=16, help="batch of the vit case")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "he2rna-bench"))
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        kind, *rest = args.worker
        if kind == "model":
            backbone, precision, tiles, batch = rest
            result = case_model(backbone, precision, int(tiles), int(batch), args.threads)
        elif kind == "pair":
            backbone, tiles, batch = rest
            result = case_model_pair(backbone, int(tiles), int(batch), args.threads)
        else:
            backbone, slide, tiles, batch, workers, lazy, precision = rest
            tiles = None if tiles == "all" else int(tiles)
            result = case_e2e(
                backbone,
                slide,
                tiles,
                int(batch),
                int(workers),
                args.threads,
                lazy == "1",
                args.workdir,
                precision,
            )
        print(json.dumps(result))
        return 0

    sys.path.insert(0, str(HERE))
    from _large_slide import write_large_slide

    Path(args.workdir).mkdir(parents=True, exist_ok=True)
    common = dict(
        threads=args.threads, OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
    )
    print(json.dumps({"settings": common}))
    if args.case in ("speed", "all"):
        big = write_large_slide(Path(args.workdir) / "synthetic-20k.tiff", size=20_000)
        model = _child(args, ["model", args.backbone, "auto", str(args.tiles), str(args.batch)])
        fp32 = _child(
            args, ["model", args.backbone, "fp32", str(max(args.batch * 3, 128)), str(args.batch)]
        )
        print(json.dumps(model))
        print(json.dumps(fp32))
        for slide in (big, CMU):
            e2e = _child(
                args,
                [
                    "e2e",
                    args.backbone,
                    str(slide),
                    str(args.tiles),
                    str(args.batch),
                    str(args.workers),
                    "0",
                    "auto",
                ],
            )
            print(json.dumps(e2e))
        print(
            json.dumps(
                {"default_vs_fp32_nchw": round(model["tiles_per_s"] / fp32["tiles_per_s"], 2)}
            )
        )
    if args.case in ("vit", "all"):
        case_vit(args)
    if args.case in ("rss", "all"):
        tiny = "mobilenet_v3_small"
        for size in args.sizes:
            slide = write_large_slide(
                Path(args.workdir) / f"synthetic-{size // 1000}k.tiff", size=size
            )
            r = _child(
                args,
                ["e2e", tiny, str(slide), "all", str(args.batch), str(args.workers), "1", "auto"],
            )
            print(json.dumps({"case": "rss", "side_px": size, **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
