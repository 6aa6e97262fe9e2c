"""Shared fixtures: small real and synthetic data, and a fast weights-free backbone."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

os.environ.setdefault("MPLBACKEND", "Agg")  # tests draw figures without a display

DATA = Path(__file__).parent / "data"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
CMU_SVS = DATA / "cmu-1-small-region.svs"


class TinyCNN(nn.Module):
    """A small convolutional feature extractor: (B, 3, H, W) -> (B, 16)."""

    def __init__(self, seed=0):
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.conv1 = nn.Conv2d(3, 8, 5, stride=4)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)

    def forward(self, x):
        x = torch.relu(self.conv1(x))
        x = torch.relu(self.conv2(x))
        return x.mean(dim=(2, 3))


@pytest.fixture
def tiny_cnn():
    return TinyCNN()


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory):
    """Ten patients of small synthetic slides (900 x 1200 px)."""
    from he2rna_sklearn.datasets import make_synthetic_cohort

    out = tmp_path_factory.mktemp("cohort")
    return make_synthetic_cohort(
        n_patients=10, out_dir=out, grid=(6, 8), random_state=0, progress=False
    )


@pytest.fixture(scope="session")
def pen_slide(tmp_path_factory):
    """A pyramidal TIFF (512 x 1024 px at 0.5 µm/px) of H&E-stained tissue and a blue
    marker stroke on the glass beside it, with the level-0 boxes (x0, y0, x1, y1) of both:
    tiles of 64 µm (128 px) find 6 tissue tiles, and 8 more on the stroke when pen marks
    are kept."""
    from he2rna_sklearn.datasets import write_pyramidal_tiff

    rng = np.random.default_rng(0)
    img = np.full((512, 1024, 3), 240.0)  # glass
    tissue, stroke = (128, 128, 512, 384), (640, 0, 896, 512)
    for (x0, y0, x1, y1), colour in ((tissue, (170, 80, 140)), (stroke, (40, 90, 180))):
        img[y0:y1, x0:x1] = colour  # H&E purple; blue marker ink
    img = np.clip(img + rng.normal(0, 4, img.shape), 0, 255).astype(np.uint8)
    path = tmp_path_factory.mktemp("pen") / "pen-stroke.tiff"
    return write_pyramidal_tiff(path, img, 0.5), tissue, stroke


def random_bags(n_bags, n_features=8, min_tiles=3, max_tiles=40, seed=0):
    """Ragged float32 bags of normal noise."""
    rng = np.random.default_rng(seed)
    return [
        rng.normal(size=(int(rng.integers(min_tiles, max_tiles)), n_features)).astype(np.float32)
        for _ in range(n_bags)
    ]


def planted_fraction(n_bags, seed, n_features=16):
    """Bags where some tiles carry a marker pattern; y is the fraction of marker tiles."""
    rng = np.random.default_rng(seed)
    bags, y = [], []
    for _ in range(n_bags):
        n = int(rng.integers(50, 150))
        marker = rng.random(n) < rng.uniform(0, 0.5)
        x = rng.normal(size=(n, n_features)).astype(np.float32)
        x[marker, :4] += 2.0
        bags.append(x)
        y.append(marker.mean())
    return bags, np.array(y)


class SlowTransform:
    """A tile transform that only waits: makes a slide take a while (picklable)."""

    def __init__(self, delay):
        self.delay = delay

    def __call__(self, tile):
        import time

        time.sleep(self.delay)
        return tile
