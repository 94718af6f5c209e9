"""The inventory: defaults, where it is looked for, and one clear error for each kind of bad entry."""

from __future__ import annotations

import pytest

from edgeship.devices.inventory import load_inventory, parse_device, select
from edgeship.errors import UsageError


def write(tmp_path, text):
    path = tmp_path / "devices.toml"
    path.write_text(text)
    return path


def test_defaults_and_home_relative_paths(tmp_path):
    devices = load_inventory(write(tmp_path, '[devices.pi4]\nhost = "pi4.local"\nworkdir = "~/fleet"\n[devices.pi5]\nhost = "10.0.0.5"\nport = 2222\nextra = "tflite"\n'))
    pi4, pi5 = devices["pi4"], devices["pi5"]
    assert (pi4.port, pi4.python, pi4.extra, pi4.kind, pi4.workdir, pi4.venv_path) == (22, "python3", "litert", "ssh", "fleet", "fleet/venv-litert")
    assert pi5.address.endswith("@10.0.0.5:2222") and pi5.venv_path == ".edgeship/venv-tflite"


def test_local_and_emulated_kinds(tmp_path):
    devices = load_inventory(write(tmp_path, f'[devices.here]\nkind = "local"\nfolder = "{tmp_path}"\n'
                                             f'[devices.emupi]\nkind = "qemu-arm64"\nfolder = "{tmp_path}/pi"\nextra = "tflite"\n'))
    assert devices["here"].address == f"local folder {tmp_path}"
    emupi = devices["emupi"]
    assert emupi.root.endswith(".cache/edgeship/arm64-bookworm/root") and emupi.cpu == "cortex-a72"
    assert emupi.address == f"qemu-aarch64 cortex-a72 in {tmp_path}/pi"
    with pytest.raises(UsageError, match='is kind = "qemu-arm64" and needs folder'):
        parse_device("pi", {"kind": "qemu-arm64"})


def test_default_locations_cwd_then_user_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    with pytest.raises(UsageError, match="no inventory: .*devices.toml does not exist"):
        load_inventory()
    (tmp_path / "config" / "edgeship").mkdir(parents=True)
    (tmp_path / "config" / "edgeship" / "devices.toml").write_text('[devices.from_config]\nhost = "a"\n')
    assert list(load_inventory()) == ["from_config"]
    (tmp_path / "devices.toml").write_text('[devices.from_cwd]\nhost = "b"\n')
    assert list(load_inventory()) == ["from_cwd"]


@pytest.mark.parametrize("text, message", [
    ('[devices.pi]\nhost = "a"\npassword = "hunter2"\n', r"unknown key password \(passwords are not taken"),
    ('[devices.pi]\nhost = "a"\nport = 70000\n', "port must be a whole number from 1 to 65535"),
    ('[devices.pi]\nuser = "pi"\n', r"\[devices.pi\] has no host"),
    ('[devices.pi]\nhost = "a"\nextra = "tensorflow"\n', "extra must be one of litert, tflite, onnx"),
    ('[devices.pi]\nhost = "a"\nidentity_file = "/no/such/key"\n', "identity_file /no/such/key does not exist"),
    ('[devices.pi]\nkind = "local"\n', 'needs folder = '),
    ('[devices.pi]\nhost = ""\n', "host must be a non-empty string"),
    ('[devices]\n', "has no devices"),
    ('[devices.pi\nhost = "a"\n', "is not valid TOML"),
])
def test_bad_entries_name_the_problem(tmp_path, text, message):
    with pytest.raises(UsageError, match=message):
        load_inventory(write(tmp_path, text))


def test_missing_file_and_unknown_names(tmp_path):
    with pytest.raises(UsageError, match="inventory .*nothere.toml not found"):
        load_inventory(tmp_path / "nothere.toml")
    devices = {"a": parse_device("a", {"host": "a"}), "b": parse_device("b", {"host": "b"})}
    assert [d.name for d in select(devices, ["b", "a", "b"])] == ["b", "a"]
    assert [d.name for d in select(devices, None, everything=True)] == ["a", "b"]
    with pytest.raises(UsageError, match="no device named c in the inventory; known: a, b"):
        select(devices, ["c"])
    with pytest.raises(UsageError, match="letters, digits"):
        parse_device("bad name", {"host": "x"})
