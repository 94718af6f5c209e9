"""The model card: a small JSON file beside a `.keras` model that records what the model expects.

Training writes `model.keras` and `model.edgeship.json`; export reads the card so the input
scaling, labels and dataset are recorded once and never retyped. A user's own model without a
card gets the same fields from export options (defaults: x/255, labels "0".."N-1").
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgeship.errors import BundleError, ModelError
from edgeship.files import atomic_write_json
from edgeship.manifest import InputSpec

CARD_SUFFIX = ".edgeship.json"


@dataclass
class ModelCard:
    """Labels, input scaling and provenance of a trained model."""

    labels: list[str]
    input: InputSpec
    dataset: str = ""
    architecture: str = ""
    seed: int | None = None
    split: dict[str, Any] = field(default_factory=dict)
    """How the dataset's train and test splits were made (an image folder's seeded split, its picture size), to load them again."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> "ModelCard":
        return cls(
            labels=[str(label) for label in raw["labels"]],
            input=InputSpec.from_dict(raw["input"]),
            dataset=raw.get("dataset", ""),
            architecture=raw.get("architecture", ""),
            seed=raw.get("seed"),
            split=dict(raw.get("split") or {}),
        )


def card_path(model_path: str | os.PathLike) -> Path:
    """`runs/a/model.keras` -> `runs/a/model.edgeship.json`."""
    model = Path(model_path)
    return model.with_name(model.stem + CARD_SUFFIX)


def write_card(model_path: str | os.PathLike, card: ModelCard) -> Path:
    """Write the card beside the model, atomically."""
    return atomic_write_json(card_path(model_path), card.to_dict())


def read_card(model_path: str | os.PathLike) -> ModelCard | None:
    """The card beside `model_path`, or None when the model has none (a user's own model)."""
    path = card_path(model_path)
    if not path.is_file():
        return None
    try:
        return ModelCard.from_dict(json.loads(path.read_text(encoding="utf-8")))
    except (json.JSONDecodeError, KeyError, TypeError, BundleError) as exc:
        raise ModelError(f"{path} is not a valid model card ({exc}); delete it or re-train") from exc
