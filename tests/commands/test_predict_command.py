"""`edgeship predict`: the runtime's predict plus --plot (image beside its probability bars)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from edgeship.cli import main


def test_predict_png_and_plot(mlp_bundle, sample_dataset, tmp_path, capsys):
    bundle_path, test_images = mlp_bundle.bundle, sample_dataset.x_test
    Image.fromarray(test_images[0]).save(tmp_path / "digit.png")
    plot = tmp_path / "figure.png"
    assert main(["predict", str(bundle_path), str(tmp_path / "digit.png"), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "digit.png: " in out and f"wrote {plot}" in out
    with Image.open(plot) as figure:
        assert figure.size[0] > figure.size[1] > 100


def test_predict_several_images_plots_each(mlp_bundle, sample_dataset, tmp_path):
    bundle_path, test_images = mlp_bundle.bundle, sample_dataset.x_test
    np.save(tmp_path / "two.npy", test_images[:2])
    assert main(["predict", str(bundle_path), str(tmp_path / "two.npy"), "--plot", str(tmp_path / "fig.png")]) == 0
    assert (tmp_path / "fig-0.png").is_file() and (tmp_path / "fig-1.png").is_file()
