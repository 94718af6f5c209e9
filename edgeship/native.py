"""Keep TensorFlow's C++ chatter off the console: what converters and TensorFlow's start-up print on file descriptors 1 and 2.

TensorFlow logs start-up lines through absl before any Python setting (TF_CPP_MIN_LOG_LEVEL
included) applies; converters and calibrators print status lines from C++. They go to the debug
log (`-v` shows them), so tables stay clean and errors stay one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from typing import Any, Iterator

log = logging.getLogger(__name__)


@contextlib.contextmanager
def native_output_to_log(what: str) -> Iterator[None]:
    """Send what C++ converters print on stdout/stderr (file descriptors 1 and 2) to the debug log.

    The TFLite converter and the calibrator print status lines from C++ that no Python setting
    silences; they would break the command's table. Errors still arrive as Python exceptions.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as capture:
        saved = [os.dup(1), os.dup(2)]
        try:
            for descriptor in (1, 2):
                os.dup2(capture.fileno(), descriptor)
            yield
        finally:
            for descriptor, original in zip((1, 2), saved):
                os.dup2(original, descriptor)
                os.close(original)
            capture.seek(0)
            text = capture.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("%s printed:\n%s", what, text)


def import_keras_quietly() -> Any:
    """Import Keras (and TensorFlow), sending the start-up lines TensorFlow's C++ prints to the debug log."""
    with native_output_to_log("TensorFlow start-up"):
        import keras
        import tensorflow  # noqa: F401
    return keras
