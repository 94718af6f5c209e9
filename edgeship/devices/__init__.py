"""Your own devices, many at once: an inventory, one transport a device kind (SSH, a local folder), and the
install / copy / selftest / bench steps `edgeship device run` takes on each. Workstation side only: a
device needs nothing of this, just Python and the slim runtime this installs.
"""
