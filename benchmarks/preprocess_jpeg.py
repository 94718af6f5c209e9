"""What a camera picture costs before the model sees it: a 640x480 JPEG to a 96x96 model input, beside the int8 model itself.

Times, in one run, medians of many calls after warm-up, one thread:
  decode + resize   `edgeship.runtime.images.load_picture` (JPEG decoded at a reduced DCT scale, EXIF read,
                    centre-crop + bilinear as the bundle records), the path predict, bench and image folders take;
  full decode       the same picture decoded at full size and then resized, to show what draft() saves;
  normalize         the runtime's raw-pixel -> model-input converter of each int8 file (x/127.5 - 1, quantized);
  model             Classifier.predict on one raw uint8 96x96x3 image (normalize included), per int8 file;
  end to end        Classifier.predict(load_picture(photo).pixels): what a camera app pays per photo.
The figure to hold: decode + resize + normalize <= the int8 model's own latency.

    python benchmarks/preprocess_jpeg.py --bundle RUN/bundle     # an RGB 96x96 bundle (edgeship pipeline --model mobilenetv2)
    python benchmarks/preprocess_jpeg.py                          # builds one: untrained MobileNetV2-0.35 96x96, int8 files
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ARTIFACTS = ("tflite-int8", "onnx-int8")
PHOTO_SIZE = (640, 480)


def median_ms(call: Callable[[], object], seconds: float) -> float:
    """Median milliseconds of `call` over `seconds` (at least 50 calls) after a tenth of that as warm-up."""
    warm_until = time.perf_counter() + seconds / 10
    while time.perf_counter() < warm_until:
        call()
    durations: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(durations) < 50:
        started = time.perf_counter()
        call()
        durations.append(time.perf_counter() - started)
    return float(np.median(durations) * 1e3)


def camera_photo(path: Path, seed: int = 0) -> Path:
    """A 640x480 JPEG with what photos have: smooth light, a few objects, sensor noise."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    width, height = PHOTO_SIZE
    ys, xs = np.mgrid[0:height, 0:width]
    light = np.stack([120 + 80 * np.sin(xs / 170 + c) * np.cos(ys / 130 - c) for c in (0.0, 0.7, 1.4)], axis=-1)
    picture = Image.fromarray(np.clip(light + rng.normal(0, 6, light.shape), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(picture)
    for _ in range(6):
        x, y, r = rng.integers(60, width - 60), rng.integers(60, height - 60), rng.integers(20, 90)
        draw.ellipse([x - r, y - r, x + r, y + r], fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    picture.filter(ImageFilter.GaussianBlur(1.2)).save(path, quality=90)
    return path


def build_bundle(folder: Path, size: int) -> Path:
    """An untrained MobileNetV2-0.35 at size x size (speed does not depend on training), exported to the int8 files."""
    from PIL import Image

    from edgeship.export import export_bundle
    from edgeship.native import import_keras_quietly

    keras = import_keras_quietly()
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    for label in ("a", "b"):
        (folder / "pictures" / label).mkdir(parents=True)
        for index in range(16):
            Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(folder / "pictures" / label / f"{index}.png")
    model = keras.applications.MobileNetV2(input_shape=(size, size, 3), alpha=0.35, weights=None, classes=2)
    model.save(folder / "model.keras")
    export_bundle(folder / "model.keras", folder / "bundle", formats=",".join(ARTIFACTS), dataset=str(folder / "pictures"),
                  input_scale=1 / 127.5, mean=1.0)
    return folder / "bundle"


def measure(bundle: Path, photo: Path, seconds: float) -> list[dict[str, object]]:
    from PIL import Image

    from edgeship.manifest import load_manifest
    from edgeship.runtime import Classifier
    from edgeship.runtime.images import PictureRule, fit_picture, load_picture
    from edgeship.runtime.preprocess import image_geometry, input_converters

    manifest = load_manifest(bundle)
    height, width, channels = image_geometry(manifest.input)
    rule = PictureRule.from_spec(manifest.input, height, width)

    def full_decode() -> np.ndarray:
        with Image.open(photo) as picture:
            return fit_picture(np.asarray(picture.convert("RGB")), height, width, manifest.input.resize)

    pixels = load_picture(photo, rule).pixels
    decode_ms, full_ms = median_ms(lambda: load_picture(photo, rule), seconds), median_ms(full_decode, seconds)
    rows = []
    for name in ARTIFACTS:
        if not any(artifact.name == name and artifact.has_file for artifact in manifest.artifacts):
            continue
        with Classifier.load(bundle, artifact=name, threads=1) as classifier:
            tensor = classifier.runner.input
            uint8_convert, general = input_converters(manifest.input, tensor, classifier.runner.path)
            convert = uint8_convert or general
            buffer = np.empty((1, *tensor.shape[1:]), dtype=tensor.dtype)
            source = pixels.reshape(buffer.shape)
            normalize_ms = median_ms(lambda: convert(source, buffer), seconds)
            model_ms = median_ms(lambda: classifier.predict(pixels), seconds)
            end_to_end_ms = median_ms(lambda: classifier.predict(load_picture(photo, rule).pixels), seconds)
        preprocess_ms = decode_ms + normalize_ms
        rows.append({
            "artifact": name, "picture": f"{PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} JPEG", "model_input": f"{width}x{height}x{channels}",
            "decode_resize_ms": round(decode_ms, 4), "full_decode_resize_ms": round(full_ms, 4),
            "normalize_ms": round(normalize_ms, 4), "preprocess_ms": round(preprocess_ms, 4), "model_ms": round(model_ms, 4),
            "end_to_end_ms": round(end_to_end_ms, 4), "preprocess_over_model": round(preprocess_ms / model_ms, 3),
            "draft_saving": round(full_ms / decode_ms, 2),
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, help="an RGB bundle with tflite-int8 and/or onnx-int8 (default: build one)")
    parser.add_argument("--size", type=int, default=96, help="model input size when building the bundle (default 96)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds per measurement (default 2)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="edgeship-preprocess-") as scratch:
        folder = Path(scratch)
        bundle = args.bundle or build_bundle(folder, args.size)
        rows = measure(bundle, camera_photo(folder / "photo.jpg"), args.seconds)
    if not rows:
        print(f"{bundle} has none of {', '.join(ARTIFACTS)}", file=sys.stderr)
        return 2
    from edgeship.runtime.tables import markdown_table

    print(markdown_table(
        ("int8 file", "decode+resize ms", "(full decode ms)", "normalize ms", "preprocess ms", "model ms", "preprocess/model",
         "end to end ms"),
        [(row["artifact"], f"{row['decode_resize_ms']:.3f}", f"{row['full_decode_resize_ms']:.3f}", f"{row['normalize_ms']:.4f}",
          f"{row['preprocess_ms']:.3f}", f"{row['model_ms']:.3f}", f"{row['preprocess_over_model']:.2f}x", f"{row['end_to_end_ms']:.3f}")
         for row in rows],
    ))
    print(json.dumps({"benchmark": "preprocess_jpeg", "rows": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
