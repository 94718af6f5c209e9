"""The train stage: a small model zoo and a seeded training run that writes model.keras and its metrics."""

from edgeship.train.zoo import ARCHITECTURES

__all__ = ["ARCHITECTURES", "train_model", "TrainResult"]


def __getattr__(name: str):
    """Import the TensorFlow-backed trainer only when it is used."""
    if name in ("train_model", "TrainResult"):
        from edgeship.train import trainer

        return getattr(trainer, name)
    raise AttributeError(name)
