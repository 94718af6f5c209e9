"""`edgeship device run` at scale: 20 devices at once against one, and the SSH path against running the same steps locally.

One real sshd on localhost serves every device (each its own workdir; all share one cached runtime
venv, as tests/devices does). What is measured is orchestration, not pip: every figure is a second
run, with the venv and the bundle already in place, and a short bench. All devices run on this one
machine's cores, so the 20-device run also measures 20 selftests and benches competing for them;
on real devices each has its own CPU. Prints a table and one JSON line.

    python benchmarks/devices_scale.py --bundle artifacts/bench/mlp/bundle [--devices 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "devices"))

from sshd import sshd_missing_reason, start_sshd  # noqa: E402

from edgeship.devices.inventory import parse_device  # noqa: E402
from edgeship.devices.run import RunOptions, check_all, run_devices  # noqa: E402
from edgeship.devices.wheels import cache_root  # noqa: E402
from edgeship.runtime.tables import markdown_table  # noqa: E402

STEPS = ("connect", "probe", "install", "copy", "selftest", "bench", "fetch")


def timed_run(devices, bundle: Path, out: Path, options: RunOptions) -> tuple[float, list]:
    started = time.perf_counter()
    results = run_devices(devices, bundle, out, options, say=lambda line: None)
    wall = time.perf_counter() - started
    failed = [f"{r.name}: {r.reason}" for r in results if r.status != "pass"]
    if failed:
        raise SystemExit("device run failed: " + "; ".join(failed))
    return wall, results


def timed_check(devices, options: RunOptions) -> float:
    """Connect and gather facts (one helper call) on every device at once: orchestration with almost no device work."""
    import asyncio

    started = time.perf_counter()
    found = asyncio.run(check_all(devices, options))
    wall = time.perf_counter() - started
    errors = [entry["error"] for entry in found if "error" in entry]
    if errors:
        raise SystemExit("device check failed: " + "; ".join(errors))
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bundle", type=Path, default=ROOT / "artifacts" / "bench" / "mlp" / "bundle")
    parser.add_argument("--devices", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3, help="runs of the one-device and local cases (median taken)")
    parser.add_argument("--seconds", default="0.1", help="bench seconds per configuration")
    args = parser.parse_args()
    if not (args.bundle / "manifest.json").is_file():
        raise SystemExit(f"{args.bundle} is not a bundle; run `make bench` (cross_backend) first or give --bundle")
    reason = sshd_missing_reason()
    if reason:
        print(f"SKIP: {reason}")
        return 77
    venv = str(cache_root() / "device-venvs" / f"onnx-py{sys.version_info[0]}{sys.version_info[1]}")
    python = getattr(sys, "_base_executable", sys.executable)
    options = RunOptions(jobs=args.devices, bench_options=["--threads", "1", "--batch", "1", "--seconds", args.seconds])
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        server = start_sshd(scratch / "sshd")
        try:
            def ssh_device(name: str):
                return parse_device(name, {"host": "127.0.0.1", "port": server.port, "identity_file": str(server.user_key),
                                           "known_hosts": str(server.known_hosts), "python": python, "extra": "onnx",
                                           "workdir": str(scratch / "devices" / name), "venv": venv})

            one = [ssh_device("one")]
            fleet = [ssh_device(f"dev{index:02d}") for index in range(args.devices)]
            (scratch / "local").mkdir()
            local = [parse_device("local", {"kind": "local", "folder": str(scratch / "local"), "python": python, "extra": "onnx",
                                            "workdir": "edgeship", "venv": venv})]
            out = scratch / "run" / "devices"
            for group in (one, local, fleet):  # first runs: venv brought up to date, bundles copied (not measured)
                timed_run(group, args.bundle, out, options)
            one_walls, local_walls, one_steps, local_steps = [], [], [], []
            for _ in range(args.repeats):
                wall, results = timed_run(one, args.bundle, out, options)
                one_walls.append(wall)
                one_steps.append(results[0].steps.seconds)
                wall, results = timed_run(local, args.bundle, out, options)
                local_walls.append(wall)
                local_steps.append(results[0].steps.seconds)
            fleet_wall, fleet_results = timed_run(fleet, args.bundle, out, options)
            check_one = statistics.median(timed_check(one, options) for _ in range(args.repeats))
            check_fleet = statistics.median(timed_check(fleet, options) for _ in range(args.repeats))
        finally:
            server.stop()
    one_wall, local_wall = statistics.median(one_walls), statistics.median(local_walls)
    per_step = {step: (statistics.median(s.get(step, 0) for s in one_steps), statistics.median(s.get(step, 0) for s in local_steps))
                for step in STEPS}
    fleet_device = statistics.median(r.wall_seconds for r in fleet_results)
    rows = [
        ["1 device over SSH (second run)", f"{one_wall:.2f}", "1.00×"],
        [f"{args.devices} devices over SSH at once (second run)", f"{fleet_wall:.2f}", f"{fleet_wall / one_wall:.2f}×"],
        ["1 device as a local folder (same steps, no SSH)", f"{local_wall:.2f}", f"{local_wall / one_wall:.2f}×"],
        ["`device check` (connect + facts), 1 device", f"{check_one:.2f}", "–"],
        [f"`device check` (connect + facts), {args.devices} devices at once", f"{check_fleet:.2f}", f"{check_fleet / check_one:.2f}× the 1-device check"],
    ]
    print("All timings on one shared host: every device's selftest and bench ran on its cores.\n")
    print(markdown_table(["case", "wall (s)", "vs 1 device"], rows))
    print()
    print(markdown_table(["step", "SSH (s)", "local (s)", "SSH overhead (s)"],
                         [[step, f"{ssh:.3f}", f"{here:.3f}", f"{ssh - here:+.3f}"] for step, (ssh, here) in per_step.items()]))
    print()
    print(json.dumps({
        "benchmark": "devices_scale", "devices": args.devices, "one_device_s": round(one_wall, 3), "fleet_s": round(fleet_wall, 3),
        "fleet_over_one": round(fleet_wall / one_wall, 2), "fleet_median_device_s": round(fleet_device, 3),
        "local_s": round(local_wall, 3), "check_one_s": round(check_one, 3), "check_fleet_s": round(check_fleet, 3),
        "check_fleet_over_one": round(check_fleet / check_one, 2), "ssh_overhead_per_device_s": round(one_wall - local_wall, 3),
        "ssh_overhead_by_step_s": {step: round(ssh - here, 3) for step, (ssh, here) in per_step.items()},
        "shared_host": True,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
