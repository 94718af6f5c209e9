"""The device side of `edgeship device`: a standard-library script the device's own Python runs from stdin.

`python3 - COMMAND ARGS...` with this file as its input; it prints one JSON object. It needs nothing
installed (not even edgeship), so it works before the runtime's venv exists, and it keeps the
round trips few: `arrive`, the first call of `device run`, gathers every fact `device check` shows
(the venv's marker among them), stages the bundle version (switching to it at once when nothing is
to copy) and says which other files (a picture to bench from) are missing, all in one; `commit`
switches to a version after its files were copied. Written for any Python 3.7+ a device may have.

A bundle lives on the device as `bundles/.NAME.DIGEST/` (one folder per content) with `bundles/NAME`
a symlink to the current one. A new version is staged in `.NAME.DIGEST.partial/` (unchanged files
hard-linked from the current version, the others uploaded under a temporary name and renamed), and
only a complete, hash-checked folder is renamed into place and the symlink swapped with one
rename: a connection killed mid-copy leaves the previous bundle as it was and a partial folder the
next run finishes.
"""

import hashlib
import json
import os
import platform
import shutil
import sys

UPLOAD_SUFFIX = ".upload"
MARKER = ".edgeship-wheels.json"


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read(path, default=None):
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read().strip()
    except OSError:
        return default


def existing_parent(path):
    path = os.path.abspath(path)
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def os_name():
    for line in (read("/etc/os-release", "") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return platform.system() + " " + platform.release()


def cpu_model():
    text = read("/proc/cpuinfo", "") or ""
    for key in ("model name", "Model", "Hardware", "cpu model"):
        for line in text.splitlines():
            name, _, value = line.partition(":")
            if name.strip() == key and value.strip():
                return value.strip()
    return platform.processor() or platform.machine()


def cpu_frequency():
    base = "/sys/devices/system/cpu/cpu0/cpufreq"
    if not os.path.isdir(base):
        return {"governor": None, "cur_mhz": None, "max_mhz": None}

    def mhz(name):
        value = read(os.path.join(base, name))
        return round(int(value) / 1000) if value and value.isdigit() else None

    return {"governor": read(os.path.join(base, "scaling_governor")), "cur_mhz": mhz("scaling_cur_freq"),
            "max_mhz": mhz("cpuinfo_max_freq") or mhz("scaling_max_freq")}


def throttled():
    """`vcgencmd get_throttled` on a Raspberry Pi: the raw value and what its bits say; None elsewhere."""
    import re
    import subprocess  # here, not at the top: importing it is half the helper's start, and only a Pi needs it
    tool = shutil.which("vcgencmd") or ("/usr/bin/vcgencmd" if os.path.exists("/usr/bin/vcgencmd") else None)
    if tool is None:
        return None
    try:
        output = subprocess.run([tool, "get_throttled"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10).stdout.decode()
    except (OSError, subprocess.SubprocessError) as exc:
        return {"raw": None, "error": str(exc)}
    match = re.search(r"0x[0-9a-fA-F]+", output)
    if not match:
        return {"raw": output.strip(), "error": "unexpected output"}
    value = int(match.group(0), 16)
    bits = {0: "under-voltage now", 1: "ARM frequency capped now", 2: "throttled now", 3: "soft temperature limit now",
            16: "under-voltage has occurred", 17: "frequency capping has occurred", 18: "throttling has occurred",
            19: "soft temperature limit has occurred"}
    return {"raw": match.group(0), "flags": [text for bit, text in sorted(bits.items()) if value >> bit & 1]}


def facts(workdir, venv):
    try:
        usage = shutil.disk_usage(existing_parent(workdir))
        free = usage.free
    except OSError:
        free = None
    marker = read(os.path.join(venv, MARKER))
    try:
        marker = json.loads(marker) if marker else None
    except ValueError:
        marker = None
    return {
        "machine": platform.machine(),
        "system": platform.system(),
        "os": os_name(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "libc": list(platform.libc_ver()),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpufreq": cpu_frequency(),
        "throttled": throttled(),
        "home": os.getcwd(),
        "disk_free_bytes": free,
        "venv_python": os.path.exists(os.path.join(venv, "bin", "python")) or os.path.isdir(os.path.join(venv, "site", "edgeship")),
        "venv_marker": marker,
        "has_venv_module": has_venv_module(),
    }


def has_venv_module():
    """Whether `python -m venv` can make a venv with pip (Debian splits ensurepip into python3-venv)."""
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("venv", "ensurepip"))


def hashes(folder):
    """{relative path: sha256} of every file under folder (following a symlinked folder), hidden upload files left out."""
    found = {}
    if not os.path.isdir(folder):
        return found
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(UPLOAD_SUFFIX):
                continue
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder).replace(os.sep, "/")] = sha256(path)
    return found


def version_folder(bundles, name, digest):
    return os.path.join(bundles, "." + name + "." + digest)


def stage(bundles, name, digest, wanted):
    """Make `.NAME.DIGEST.partial` hold every wanted file it can without uploading; say which files still must come."""
    os.makedirs(bundles, exist_ok=True)
    current = os.path.join(bundles, name)
    final = version_folder(bundles, name, digest)
    if os.path.isdir(final) and hashes(final) == wanted:
        return {"needed": [], "ready": True, "partial": None}
    partial = final + ".partial"
    prefix = "." + name + "."
    for entry in os.listdir(bundles):
        stale = os.path.join(bundles, entry)
        if entry.startswith(prefix) and entry.endswith(".partial") and stale != partial:
            shutil.rmtree(stale, ignore_errors=True)
    os.makedirs(partial, exist_ok=True)
    have = {}
    for root, _, files in os.walk(partial):
        for file_name in files:
            path = os.path.join(root, file_name)
            relative = os.path.relpath(path, partial).replace(os.sep, "/")
            if file_name.endswith(UPLOAD_SUFFIX) or relative not in wanted:
                os.remove(path)
            else:
                have[relative] = sha256(path)
    previous = hashes(current) if os.path.isdir(current) else {}
    needed = []
    for relative, expected in sorted(wanted.items()):
        target = os.path.join(partial, relative)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if have.get(relative) == expected:
            continue
        if os.path.exists(target):
            os.remove(target)
        if previous.get(relative) == expected:
            source = os.path.join(current, relative)
            try:
                os.link(os.path.realpath(source), target)
            except OSError:
                shutil.copyfile(source, target + UPLOAD_SUFFIX)
                os.replace(target + UPLOAD_SUFFIX, target)
            continue
        needed.append(relative)
    return {"needed": needed, "ready": False, "partial": partial}


def commit(bundles, name, digest, wanted):
    """Check the staged folder against the wanted hashes, rename it into place, point NAME at it, drop older versions."""
    final = version_folder(bundles, name, digest)
    partial = final + ".partial"
    if os.path.isdir(partial):
        found = hashes(partial)
        wrong = sorted(relative for relative in set(found) | set(wanted) if found.get(relative) != wanted.get(relative))
        if wrong:
            return {"committed": False, "wrong": wrong}
        if os.path.isdir(final):
            shutil.rmtree(final)
        os.replace(partial, final)
    current = os.path.join(bundles, name)
    link = os.path.join(bundles, "." + name + ".link")
    if os.path.lexists(link):
        os.remove(link)
    os.symlink(os.path.basename(final), link)
    if os.path.isdir(current) and not os.path.islink(current):
        aside = os.path.join(bundles, "." + name + ".replaced")
        shutil.rmtree(aside, ignore_errors=True)
        os.replace(current, aside)
        os.replace(link, current)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(link, current)
    prefix = "." + name + "."
    for entry in os.listdir(bundles):
        path = os.path.join(bundles, entry)
        if entry.startswith(prefix) and path != final and not entry.endswith(".partial") and os.path.isdir(path):
            shutil.rmtree(path, ignore_errors=True)
    return {"committed": True, "path": current}


def missing_files(wanted):
    """Of {device path: sha256}, the paths not there with that content; their folders are made, ready for the upload."""
    missing = []
    for path, expected in sorted(wanted.items()):
        if os.path.isfile(path) and sha256(path) == expected:
            continue
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        missing.append(path)
    return missing


def os_error(exc):
    return {"oserror": exc.errno, "strerror": exc.strerror, "filename": exc.filename}


def arrive(workdir, venv, bundles, name, digest, wanted, others, stale):
    """Facts, the bundle staged (committed when nothing is to copy), the other files missing and old results removed, in one call.

    A failure to stage (a full disk) is returned beside the facts rather than raised, so the
    orchestrator can name it at its copy step, after the facts it still needs.
    """
    answer = {"facts": facts(workdir, venv)}
    try:
        prepare([], stale)
        staged = stage(bundles, name, digest, wanted)
        if not staged["needed"]:
            staged.update(commit(bundles, name, digest, wanted))
        answer["stage"] = staged
        answer["missing"] = missing_files(others)
    except OSError as exc:
        answer["stage"] = os_error(exc)
    return answer


def write(path, text):
    """Write a small text file atomically."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    temporary = path + UPLOAD_SUFFIX
    with open(temporary, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(temporary, path)
    return {"written": path}


def prepare(folders, removals):
    """Make folders and remove files (old results, installed wheels) in one round trip."""
    for folder in folders:
        os.makedirs(folder, exist_ok=True)
    for path in removals:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=True)
        elif os.path.lexists(path):
            os.remove(path)
    return {"prepared": True}


def main(argv):
    command, arguments = argv[0], argv[1:]
    if command == "facts":
        result = facts(*arguments)
    elif command == "arrive":
        result = arrive(*arguments[:5], *(json.loads(argument) for argument in arguments[5:8]))
    elif command == "hashes":
        result = hashes(arguments[0])
    elif command == "stage":
        wanted = json.loads(arguments[3])
        result = stage(arguments[0], arguments[1], arguments[2], wanted)
        if not result["needed"]:  # nothing to upload: switch to the version in the same call
            result.update(commit(arguments[0], arguments[1], arguments[2], wanted))
    elif command == "commit":
        result = commit(arguments[0], arguments[1], arguments[2], json.loads(arguments[3]))
    elif command == "write":
        result = write(arguments[0], arguments[1])
    elif command == "prepare":
        result = prepare(json.loads(arguments[0]), json.loads(arguments[1]))
    else:
        raise SystemExit("unknown command " + command)
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except OSError as exc:
        sys.stdout.write(json.dumps(os_error(exc)) + "\n")
        sys.exit(3)
