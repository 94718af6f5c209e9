"""Image folders, per-channel options and RGB models given what cannot work: one line naming the problem, exit 2, nothing written."""

from __future__ import annotations

import json
import shutil
import time

import numpy as np
import pytest
from PIL import Image


def test_a_folder_of_100000_empty_files_fails_fast_naming_one(cli, refused, tmp_path):
    for label in ("cats", "dogs"):
        (tmp_path / "pictures" / label).mkdir(parents=True)
        for index in range(50_000):
            (tmp_path / "pictures" / label / f"{index:05d}.jpg").touch()
    started = time.perf_counter()
    refused(cli("edgeship", "data", "--dataset", tmp_path / "pictures"), "edgeship", "00000.jpg is not a readable picture",
            "an empty file", "--skip-bad-images")
    refused(cli("edgeship", "data", "--dataset", tmp_path / "pictures", "--skip-bad-images"), "edgeship",
            "no readable pictures", "skipped")
    assert time.perf_counter() - started < 120


@pytest.mark.parametrize(
    "arrange, words",
    [
        (lambda root: (root / "only").mkdir(parents=True), ("1 class folder (only)", "at least 2 classes")),
        (lambda root: [(root / name).mkdir(parents=True) for name in ("a", "b")], ("has no pictures", "remove the folder")),
    ],
    ids=["single-class", "empty-class-folders"],
)
def test_folders_that_cannot_train_a_classifier_leave_no_run_folder(cli, refused, tmp_path, arrange, words):
    arrange(tmp_path / "pictures")
    result = cli("edgeship", "train", "--model", "mobilenetv2", "--dataset", tmp_path / "pictures", "--out", tmp_path / "run")
    refused(result, "edgeship", *words)
    assert not (tmp_path / "run").exists()


def test_a_decompression_bomb_in_a_folder_is_named(cli, refused, tmp_path, make_shapes_folder, bomb_png):
    folder = make_shapes_folder(tmp_path / "pictures", per_class=2)
    (folder / "square" / "huge.png").write_bytes(bomb_png)
    refused(cli("edgeship", "data", "--dataset", folder), "edgeship", "huge.png", "too large to decode safely")


def test_an_exif_rotated_16_bit_and_cmyk_folder_loads_with_its_conversions_said(cli, tmp_path, make_shapes_folder):
    folder = make_shapes_folder(tmp_path / "pictures", per_class=3)
    turned = Image.open(folder / "circle" / "circle-000.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    turned.save(folder / "circle" / "circle-000.png", exif=exif)
    Image.fromarray(np.full((40, 50), 40000, np.uint16)).save(folder / "square" / "square-000.png")
    Image.open(folder / "triangle" / "triangle-001.jpg").convert("CMYK").save(folder / "triangle" / "triangle-001.jpg")
    result = cli("edgeship", "data", "--dataset", folder, "--image-size", "24", "--json", tmp_path / "summary.json")
    assert result.returncode == 0, result.stderr
    notes = json.loads((tmp_path / "summary.json").read_text())["notes"]
    for words in ("EXIF orientation (6)", "16-bit scaled to 8-bit", "CMYK converted to RGB", "grey, repeated into 3 channels"):
        assert any(words in note for note in notes), (words, notes)
    assert "note     1 picture: CMYK converted to RGB" in result.stdout


@pytest.mark.parametrize(
    "arguments, words",
    [
        (["--model", "mobilenetv2", "--dataset", "mnist-sample"], ("mobilenetv2 takes RGB pictures", "(28, 28)")),
        (["--model", "mobilenetv2", "--image-size", "16"], ("at least 32x32", "--image-size 32")),
        (["--model", "cnn", "--dataset", "mnist-sample", "--image-size", "32"], ("arrays are never resized",)),
        (["--model", "cnn", "--recipe", "mnist"], ("mnist recipe is for grey digit photos",)),
    ],
    ids=["grey-for-mobilenetv2", "too-small", "resize-arrays", "recipe-for-rgb"],
)
def test_training_options_that_do_not_fit_the_pictures(cli, refused, tmp_path, shapes_folder, arguments, words):
    if "--dataset" not in arguments:
        arguments = [*arguments, "--dataset", shapes_folder]
    refused(cli("edgeship", "train", *arguments, "--out", tmp_path / "run"), "edgeship", *words)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "arguments, words",
    [
        (["--mean", "0.1,0.2,0.3"], ("--mean 0.1,0.2,0.3 contradicts the mean 0",)),
        (["--std", "0"], ("--std 0 contradicts",)),
        (["--color", "rgb"], ("--color rgb contradicts the color grey",)),
    ],
    ids=["per-channel-mean-on-grey", "std-zero", "rgb-on-grey"],
)
def test_export_options_that_contradict_the_card_write_nothing(cli, refused, mlp_run, tmp_path, arguments, words):
    result = cli("edgeship", "export", mlp_run.model_path, "--formats", "tflite-fp32", "--out", tmp_path / "bundle", *arguments)
    refused(result, "edgeship", *words)
    assert not (tmp_path / "bundle").exists()


@pytest.mark.parametrize(
    "options, words",
    [
        (["--mean", "0.1,0.2,0.3"], ("mean lists 3 values but the model takes 1 channel",)),
        (["--std", "1,0"], ("std lists 2 values",)),
        (["--std", "0"], ("std must be a finite number other than 0",)),
        (["--color", "rgb"], ("color rgb does not fit the model's 1 input channel",)),
    ],
    ids=["mean-length", "std-length", "std-zero", "rgb-on-grey"],
)
def test_bare_file_options_of_the_wrong_shape(cli, refused, bundle_path, digit_npy, options, words):
    refused(cli("runtime", "predict", bundle_path / "model_fp32.tflite", digit_npy, *options), "runtime", *words)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"mean": [0.1, 0.2]}, ("input.mean lists 2 values but the model takes 1 channel",)),
        ({"std": [0.0]}, ("std",)),
        ({"resize": {"method": "bicubic", "fit": "crop"}}, ("resize must have a method in bilinear, area, nearest",)),
        ({"recipe": "fashion"}, ("recipe must be one of mnist",)),
        ({"color": "rgb"}, ("color rgb does not fit",)),
    ],
    ids=["mean-length", "std-zero", "bad-method", "bad-recipe", "rgb-on-grey"],
)
def test_a_manifest_with_a_bad_preprocessing_contract_is_refused(cli, refused, bundle_copy, digit_npy, change, words):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["input"].update(change)
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    refused(cli("runtime", "predict", bundle_copy, digit_npy), "runtime", *words, "re-export")


def test_an_rgb_array_for_a_grey_model_and_a_grey_array_for_an_rgb_model(cli, refused, bundle_path, tmp_path):
    np.save(tmp_path / "rgb.npy", np.zeros((28, 28, 3), np.uint8))
    refused(cli("runtime", "predict", bundle_path, tmp_path / "rgb.npy"), "runtime", "(28, 28, 3)", "does not resize arrays")


def test_a_schema_1_bundle_still_loads_with_the_default_picture_rule(cli, bundle_copy, tmp_path, test_images):
    manifest = json.loads((bundle_copy / "manifest.json").read_text())
    manifest["schema"] = "edgeship.bundle/1"
    for key in ("color", "resize", "recipe", "note"):
        manifest["input"].pop(key)
    manifest["input"]["dtype"] = "uint8"
    (bundle_copy / "manifest.json").write_text(json.dumps(manifest))
    big = np.zeros((56, 56), np.uint8)
    big[14:42, 14:42] = test_images[0]
    Image.fromarray(big).save(tmp_path / "digit.png")
    result = cli("runtime", "predict", bundle_copy, tmp_path / "digit.png")
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "digit.png: 56×56 → 28×28, centre-crop, bilinear, as the bundle records"
    shutil.rmtree(bundle_copy)
