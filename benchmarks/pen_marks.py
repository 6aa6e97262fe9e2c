"""Pen-mark exclusion of the automatic tissue mask: tissue kept, ink removed.

Real H&E only, at the resolutions a tissue mask is computed at (``SlideFeaturizer`` takes
its thumbnail at about 14 µm/px for 224-px tiles at 0.5 µm/px; 2 and 4 µm/px for finer
masks; 0.5 µm/px, full resolution, for reference):

* ``tissue``: the tissue found with ``exclude_pen_marks`` on, as a fraction of the tissue
  found with it off, on ink-free images: each Kather 2016 texture class (3 real tiles, 150
  px at 0.495 µm/px, laid 3 x 3 with flips on real glass taken from the EMPTY tiles),
  two real TCGA slides' tiles, and cmu-1-small-region.svs (a real Aperio slide region).
* ``ink``: a 6 x 4.5 mm slide canvas built at each resolution from the same real images
  (their reduced tiles laid as eight tissue islands on real glass, and the CMU-1 region),
  crossed by two marker strokes 0.3-0.8 mm wide, with a 0.4 mm ring drawn around one
  island. Ink is a transmitting absorber (Beer-Lambert): a pixel under ink is
  ``pixel * (ink_on_glass / glass) ** a``, with ``a`` the local ink load (0.7-1.3 along
  the stroke, falling to 0 over its soft edges). Painted at the thumbnail's resolution,
  this equals painting at full resolution and then reducing wherever the load is even.
  Ink colours on glass are taken inside the ranges that histolab's and
  python-wsi-preprocessing's pen filters list for TCGA thumbnails: blue (35, 75, 170),
  (70, 110, 200), (110, 140, 215), navy (30, 40, 120); green (40, 130, 110), (25, 90, 75),
  light (120, 175, 160); black (30, 30, 38), (50, 50, 58), (20, 20, 25). Reported: the
  fraction of ink pixels (load >= 0.5 after reduction) over glass counted as tissue, with
  the filter off and on, the fraction of ink pixels over tissue left out of the mask, the
  glass inside a ring drawn around tissue taken for tissue, and the tissue away from the
  ink (load < 0.05) kept, each for every ink and resolution.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/pen_marks.py
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image

from he2rna_sklearn.slides import tissue_mask

DATA = Path(__file__).resolve().parents[1] / "he2rna_sklearn" / "datasets" / "data" / "kather2016"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
INKS = {
    "blue": [(35, 75, 170), (70, 110, 200), (110, 140, 215), (30, 40, 120)],
    "green": [(40, 130, 110), (25, 90, 75), (120, 175, 160)],
    "black": [(30, 30, 38), (50, 50, 58), (20, 20, 25)],
}
TISSUE_CLASSES = ["01_TUMOR", "02_STROMA", "03_COMPLEX", "04_LYMPHO", "05_DEBRIS", "06_MUCOSA"]
FACTORS = {1: "0.5", 4: "2", 8: "4", 28: "14"}  # downsample -> µm/px


def _rgb(path):
    return np.asarray(Image.open(path).convert("RGB")).astype(np.float32)


def _glass(shape, rng):
    """Real glass: pixels of the Kather EMPTY tiles, tiled with random flips."""
    tiles = [_rgb(p) for p in sorted((DATA / "08_EMPTY").glob("*.tif"))]
    out = np.empty((*shape, 3), np.float32)
    t = tiles[0].shape[0]
    for y in range(0, shape[0], t):
        for x in range(0, shape[1], t):
            tile = tiles[rng.integers(len(tiles))][:: rng.choice([-1, 1]), :: rng.choice([-1, 1])]
            out[y : y + t, x : x + t] = tile[: shape[0] - y, : shape[1] - x]
    return out


def _on_glass(tiles, rng, border=150):
    """Tiles laid 3 x 3 (with flips) in the middle of real glass; the tissue's box."""
    t = tiles[0].shape[0]
    img = _glass((3 * t + 2 * border, 3 * t + 2 * border), rng)
    for i in range(3):
        for j in range(3):
            tile = tiles[(i + j) % len(tiles)][:: (-1) ** i, :: (-1) ** j]
            img[border + i * t : border + (i + 1) * t, border + j * t : border + (j + 1) * t] = tile
    box = np.zeros(img.shape[:2], bool)
    box[border : border + 3 * t, border : border + 3 * t] = True
    return img, box


def images(rng):
    """Ink-free real H&E scenes: name -> (rgb float image at ~0.5 µm/px, tissue box or None)."""
    scenes = {}
    for cls in TISSUE_CLASSES + ["07_ADIPOSE"]:
        scenes[cls] = _on_glass([_rgb(p) for p in sorted((DATA / cls).glob("*.tif"))], rng)
    for slide in sorted((SHARED / "tiles" / "tcga").glob("TCGA-*")):
        tiles = [_rgb(p) for p in sorted(slide.glob("*.jpg"))]
        side = min(min(t.shape[:2]) for t in tiles)
        scenes[slide.name[:12]] = _on_glass([t[:side, :side] for t in tiles], rng)
    cmu = SHARED / "slides" / "cmu-1-small-region.svs"
    if cmu.is_file():
        import openslide

        with openslide.OpenSlide(str(cmu)) as s:
            region = s.read_region((0, 0), 0, s.dimensions).convert("RGB")
        scenes["CMU-1 region"] = (np.asarray(region).astype(np.float32), None)
    return scenes


def reduce(img, f):
    """A thumbnail: the mean of each f x f block."""
    h, w = img.shape[0] // f * f, img.shape[1] // f * f
    out = img[:h, :w].reshape(h // f, f, w // f, f, -1).mean(axis=(1, 3))
    return out if img.ndim == 3 else out[..., 0]


def _smooth_noise(n, rng, scale):
    knots = rng.normal(size=int(n // scale) + 3)
    return np.interp(np.arange(n) / scale, np.arange(len(knots)), knots)


def _ellipse(shape, cy, cx, ry, rx):
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]]
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def slide_canvas(f, rng, width_mm=6.0, height_mm=4.5):
    """A 6 x 4.5 mm stretch of slide at 0.5 * f µm/px: real glass, eight tissue islands
    (six Kather classes, two TCGA slides' tiles; ~1.2 x 0.9 mm each, their reduced tiles
    laid with flips) and the CMU-1 region. Returns the image and the islands' masks."""
    um = 0.5 * f
    h, w = round(height_mm * 1000 / um), round(width_mm * 1000 / um)
    glass_tiles = [reduce(_rgb(p), f) for p in sorted((DATA / "08_EMPTY").glob("*.tif"))]
    img = np.empty((h, w, 3), np.float32)
    t = glass_tiles[0].shape[0]
    for y in range(0, h, t):
        for x in range(0, w, t):
            tile = glass_tiles[rng.integers(3)][:: rng.choice([-1, 1]), :: rng.choice([-1, 1])]
            img[y : y + t, x : x + t] = tile[: h - y, : w - x]
    sources = {cls: sorted((DATA / cls).glob("*.tif")) for cls in TISSUE_CLASSES}
    for slide in sorted((SHARED / "tiles" / "tcga").glob("TCGA-*")):
        sources[slide.name[:12]] = sorted(slide.glob("*.jpg"))
    islands = {}
    cell_h, cell_w = h / 3, w / 3
    for k, (name, paths) in enumerate(sources.items()):
        tiles = []
        for p in paths:
            rgb = _rgb(p)
            side = min(rgb.shape[:2]) // f * f
            tiles.append(reduce(rgb[:side, :side], f))
        t = tiles[0].shape[0]
        texture = np.empty((h, w, 3), np.float32)
        for i, y in enumerate(range(0, h, t)):
            for j, x in enumerate(range(0, w, t)):
                tile = tiles[(i + j) % len(tiles)][:: (-1) ** i, :: (-1) ** j]
                texture[y : y + t, x : x + t] = tile[: h - y, : w - x]
        cy, cx = (k // 3 + 0.5) * cell_h, (k % 3 + 0.5) * cell_w
        island = _ellipse((h, w), cy, cx, 0.3 * cell_h, 0.3 * cell_w)
        img[island] = texture[island]
        islands[name] = island
    cmu = SHARED / "slides" / "cmu-1-small-region.svs"
    if cmu.is_file():
        import openslide

        with openslide.OpenSlide(str(cmu)) as s:
            region = reduce(np.asarray(s.read_region((0, 0), 0, s.dimensions).convert("RGB")), f)
        rh, rw = min(region.shape[0], int(cell_h)), min(region.shape[1], int(cell_w))
        y0, x0 = int(2.5 * cell_h - rh / 2), int(2.5 * cell_w - rw / 2)
        img[y0 : y0 + rh, x0 : x0 + rw] = region[:rh, :rw]
        box = np.zeros((h, w), bool)
        box[y0 : y0 + rh, x0 : x0 + rw] = True
        islands["CMU-1 region"] = box
    return img, islands


def ink_load(shape, f, rng, islands):
    """Ink load (0..~1.3) of marker strokes 0.3-0.8 mm wide crossing the canvas, and a
    0.4 mm ring drawn around one island, as pathologists circle a region."""
    um = 0.5 * f
    h, w = shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    load = np.zeros(shape, np.float32)

    def add(dist, width_px):
        edge = np.clip((1.0 - dist / (width_px / 2)) / 0.3, 0, 1)  # soft over 30%
        pressure = 1.0 + 0.3 * np.clip(_smooth_noise(w, rng, 1000 / um), -1, 1)
        np.maximum(load, edge * pressure[None, :].astype(np.float32), out=load)

    for y0 in (0.3 * h, 0.75 * h):
        width = rng.uniform(300, 800) / um
        centre = y0 + 0.1 * h * np.sin(xx / w * rng.uniform(3, 6) + rng.uniform(0, 6))
        add(np.abs(yy - centre), width)
    ring = islands[next(iter(islands))]
    ys, xs = np.nonzero(ring)
    cy, cx = ys.mean(), xs.mean()
    ry, rx = (ys.max() - ys.min()) / 2 + 500 / um, (xs.max() - xs.min()) / 2 + 500 / um
    radius = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2)
    add(np.abs(radius - 1) * min(ry, rx), 400 / um)
    inside = radius < 1 - 200 / um / min(ry, rx)
    return load, inside


def paint(img, load, ink, glass=(242.0, 243.0, 243.0)):
    """Ink as a transmitting absorber (Beer-Lambert) of its colour on glass."""
    transmittance = np.asarray(ink, np.float32) / np.asarray(glass, np.float32)
    return img * transmittance[None, None, :] ** load[..., None]


def _u8(img):
    return np.clip(img, 0, 255).astype(np.uint8)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)

    print("## Tissue kept on ink-free real H&E: found with the filter / found without (%)")
    print("(tiles laid 3 x 3 on real glass, reduced like a thumbnail)")
    print("scene".ljust(14) + "".join(f"{v + ' µm/px':>12}" for v in FACTORS.values()))
    for name, (img, _) in images(rng).items():
        row = []
        for f in FACTORS:
            small = _u8(reduce(img, f))
            off = tissue_mask(small, exclude_pen_marks=False)
            on = tissue_mask(small)
            row.append(
                f"{100 * (on & off).sum() / off.sum():11.2f}%" if off.any() else " " * 9 + "n/a"
            )
        print(name.ljust(14) + " ".join(row))

    print("\n## Ink on a 6 x 4.5 mm slide canvas (two strokes 0.3-0.8 mm wide, a 0.4 mm ring)")
    print("(%; each cell: filter off -> on)")
    print("ink                  µm/px  ink on glass   ink over tissue  glass inside    tissue away")
    print(
        "                            as tissue      left out         ring as tissue  from ink kept"
    )
    for f in list(FACTORS)[1:]:
        img, islands = slide_canvas(f, rng)
        clean = tissue_mask(_u8(img), exclude_pen_marks=False)
        for family, inks in INKS.items():
            for ink in inks:
                load, inside = ink_load(img.shape[:2], f, rng, islands)
                inked = _u8(paint(img, load, ink))
                off = tissue_mask(inked, exclude_pen_marks=False)
                on = tissue_mask(inked)
                ink_px, free = load >= 0.5, load < 0.05
                on_glass, on_tissue = ink_px & ~clean, ink_px & clean
                ring_glass, away = inside & ~clean & free, free & clean
                m = 100 * np.array(
                    [
                        (off & on_glass).sum() / on_glass.sum(),
                        (on & on_glass).sum() / on_glass.sum(),
                        (~off & on_tissue).sum() / on_tissue.sum(),
                        (~on & on_tissue).sum() / on_tissue.sum(),
                        (off & ring_glass).sum() / ring_glass.sum(),
                        (on & ring_glass).sum() / ring_glass.sum(),
                        (off & away).sum() / away.sum(),
                        (on & away).sum() / away.sum(),
                    ]
                )
                print(
                    f"{family + ' ' + str(ink):20s} {FACTORS[f]:>5s}"
                    + "".join(f"{m[i]:7.1f} ->{m[i + 1]:5.1f}" for i in range(0, 8, 2))
                )


if __name__ == "__main__":
    main()
