"""Write an image folder of coloured shapes (DIR/<shape>/*.png|jpg), made with Pillow, for tests and benchmarks.

No RGB data set can be downloaded where edgeship is tested, so its RGB checks use pictures it
draws itself: circles, squares and triangles of several sizes, saved as JPEG and PNG, in the layout
of Keras' `image_dataset_from_directory`. Two kinds:

- `tinted` (default): each class has its own tint (jittered) as well as its shape, on a dark plain
  background, so a small model learns it in a few epochs. For tests that need a trained model fast.
- `shape only`: fill and background colours are random for every picture, the background is noisy
  and the shape is drawn at any angle, near the centre: only the outline tells the class. For
  measuring int8 parity on a model that has to learn something (the MobileNetV2 benchmark).

Accuracy on these pictures says nothing about accuracy on real photos.

    python -m tools.shapes DIR [--per-class 300] [--seed 0] [--shape-only]
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np

SHAPES = ("circle", "square", "triangle")
SHAPE_TINTS = {"circle": (220, 60, 60), "square": (60, 200, 60), "triangle": (60, 60, 220)}
SIZES = ((60, 80), (120, 90), (200, 150), (480, 640))
"""(height, width) of the pictures, drawn at random: from smaller than the model's 96x96 to a VGA camera frame."""


def _polygon(shape: str, x: float, y: float, radius: float, angle: float) -> list[tuple[float, float]]:
    corners = 4 if shape == "square" else 3
    return [(x + radius * math.cos(angle + 2 * math.pi * k / corners), y + radius * math.sin(angle + 2 * math.pi * k / corners))
            for k in range(corners)]


def write_shapes_folder(folder: str | Path, per_class: int = 12, seed: int = 0, sizes=SIZES, shape_only: bool = False) -> Path:
    """`per_class` pictures of each shape under folder/<shape>/, every other one a JPEG; returns the folder."""
    from PIL import Image, ImageDraw

    folder = Path(folder)
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        (folder / shape).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            height, width = sizes[int(rng.integers(len(sizes)))]
            if shape_only:
                background = rng.integers(0, 256, 3)
                noise = rng.normal(0, 12, (height, width, 3))
                picture = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8), "RGB")
                fill = tuple(int(v) for v in (background + rng.choice([-1, 1], 3) * rng.integers(60, 140, 3)) % 256)
                radius = min(width, height) * rng.uniform(0.22, 0.4)
                x, y = width / 2 + rng.uniform(-0.1, 0.1) * width, height / 2 + rng.uniform(-0.1, 0.1) * height
                angle = rng.uniform(0, 2 * math.pi)
            else:
                background = tuple(int(v) for v in rng.integers(0, 90, 3))
                picture = Image.new("RGB", (width, height), background)
                fill = tuple(int(np.clip(c + rng.integers(-30, 31), 0, 255)) for c in SHAPE_TINTS[shape])
                radius = min(width, height) * rng.uniform(0.25, 0.4)
                x, y = width / 2 + rng.uniform(-0.08, 0.08) * width, height / 2 + rng.uniform(-0.08, 0.08) * height
                angle = math.pi / 4
            draw = ImageDraw.Draw(picture)
            if shape == "circle":
                draw.ellipse([x - radius, y - radius, x + radius, y + radius], fill=fill)
            elif shape == "square":
                draw.polygon(_polygon(shape, x, y, radius * math.sqrt(2), angle), fill=fill)
            elif shape_only:
                draw.polygon(_polygon(shape, x, y, radius, angle), fill=fill)
            else:
                draw.polygon([(x, y - radius), (x - radius, y + radius), (x + radius, y + radius)], fill=fill)
            suffix = "jpg" if index % 2 else "png"
            picture.save(folder / shape / f"{shape}-{index:03d}.{suffix}", **({"quality": 92} if suffix == "jpg" else {}))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shape-only", action="store_true", help="random colours and placement: only the outline tells the class")
    args = parser.parse_args(argv)
    write_shapes_folder(args.folder, args.per_class, args.seed, shape_only=args.shape_only)
    print(f"{args.folder}: {args.per_class * len(SHAPES)} pictures of {', '.join(SHAPES)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
