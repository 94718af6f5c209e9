"""Prove the slim runtime on Raspberry Pi OS without a Pi: an emulated Debian Bookworm arm64 userland.

Developer tooling, kept out of the wheel. `make test-arm64` runs `python -m tools.arm64.check`:

1. `rootfs`: makes sure `qemu-user-static` and `debootstrap` are installed (`apt-get install` when
   missing and running as root; where they cannot be, the check prints `SKIP: <reason>` and exits
   77, never passing silently), then builds once a minimal Debian Bookworm arm64 root with
   Python 3.11 under ~/.cache/edgeship/arm64-bookworm.
2. `wheels`: installs there what `pip install 'edgeship[tflite]'` installs on a Pi: a wheel built
   from this checkout plus the aarch64 wheels of its extra (numpy<2, tflite-runtime 2.14), resolved
   for manylinux aarch64 / CPython 3.11 and cached, so a warm run needs no network.
3. `check`: reaches the root as the device kind "qemu-arm64" of `edgeship device`
   (`edgeship.devices.transport.QemuArm64Transport`: its Python started under
   `qemu-aarch64-static -cpu cortex-a72`, a Raspberry Pi 4's core), and this machine as a "local"
   one (`LocalTransport`), so the emulated Pi here and `edgeship device run` share one code path.
   It copies a bundle exported on x86 into that device, runs `python -m edgeship.runtime
   selftest`, `predict --json` and `bench --machine-label ... --emulated` there, and compares the
   arm64 probabilities on 1,000 test images with the x86 ones artifact by artifact, with the
   runtime's own comparator; prints a summary and writes arm64-check.json.
"""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
"""The checkout whose runtime is checked (its wheel is built from here)."""
