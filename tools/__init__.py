"""Developer tooling kept out of the wheel: the emulated arm64 check (`tools.arm64`) and the MNIST sample builder."""
