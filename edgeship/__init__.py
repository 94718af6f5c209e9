"""edgeship: a Keras image classifier from training to device-ready, verified files."""

__version__ = "0.1.0"
