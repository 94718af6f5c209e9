"""`edgeship device list | check | run | pack`: your own devices over SSH (or a local folder), many at once."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "your devices over SSH: list, check, run a bundle's selftest and bench on many at once, or pack it for an offline device"
DEFAULT_EXTRA_ORDER = ("tflite", "litert", "onnx")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def inventory_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--inventory", metavar="FILE",
                         help="devices.toml (default: ./devices.toml, then ~/.config/edgeship/devices.toml)")

    def connection_options(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--accept-new-host-keys", action="store_true",
                         help="trust the host key of a device not yet in known_hosts and add it there (a changed key is still refused)")
        sub.add_argument("--jobs", type=int, default=16, help="devices worked on at once (default 16)")
        sub.add_argument("--timeout", type=float, default=900, help="seconds one device may take before it is given up (default 900)")

    listing = actions.add_parser("list", help="the devices of the inventory")
    inventory_option(listing)
    listing.set_defaults(action_handler=_list)

    check = actions.add_parser("check", help="architecture, OS, Python, disk, CPU frequency, throttling and which runtime fits")
    check.add_argument("names", nargs="*", metavar="NAME", help="devices to check (default: all)")
    inventory_option(check)
    connection_options(check)
    check.add_argument("--json", type=Path, metavar="FILE", help="also write the facts as JSON")
    check.set_defaults(action_handler=_check)

    run = actions.add_parser("run", help="install the runtime, copy the bundle, selftest and bench on each device at once")
    run.add_argument("bundle", metavar="BUNDLE", help="the bundle folder (RUN/bundle)")
    chosen = run.add_mutually_exclusive_group(required=True)
    chosen.add_argument("--on", metavar="NAME[,NAME...]", help="the devices to run on")
    chosen.add_argument("--all", action="store_true", help="every device of the inventory")
    inventory_option(run)
    connection_options(run)
    run.add_argument("--out", type=Path, metavar="DIR", help="where the results go (default: RUN/devices, read by `edgeship report RUN`)")
    run.add_argument("--threads", default="1", help="bench thread counts, comma-separated (default 1)")
    run.add_argument("--batch", default="1", help="bench batch sizes, comma-separated (default 1)")
    run.add_argument("--seconds", type=float, default=1.0, help="bench time per configuration (default 1)")
    run.add_argument("--picture", type=Path, metavar="FILE.jpg",
                     help="also time each artifact end to end from this picture on every device (copied there once): decode, "
                          "resize as the bundle records, predict")
    run.add_argument("--edgeship-wheel", metavar="FILE", help="install this edgeship wheel instead of building one from the sources")
    run.set_defaults(action_handler=_run)

    pack = actions.add_parser("pack", help="bundle + wheelhouse + install script for a device with no SSH and no internet")
    pack.add_argument("bundle", metavar="BUNDLE")
    pack.add_argument("--target", required=True, help="the device's platform, e.g. pi-bookworm-arm64 (see targets.toml)")
    pack.add_argument("--extra", choices=DEFAULT_EXTRA_ORDER, help="the runtime to install (default: the first of tflite, litert, onnx that fits)")
    pack.add_argument("--out", type=Path, required=True, metavar="DIR", help="the folder to write (copy it to the device)")
    pack.add_argument("--edgeship-wheel", metavar="FILE", help="use this edgeship wheel instead of building one from the sources")
    pack.set_defaults(action_handler=_pack)


def run(args: argparse.Namespace) -> int:
    return args.action_handler(args)


def _list(args: argparse.Namespace) -> int:
    from edgeship.devices.inventory import find_inventory, load_inventory
    from edgeship.runtime.tables import markdown_table

    devices = load_inventory(args.inventory)
    print(f"# {find_inventory(args.inventory)}")
    rows = [[d.name, d.kind, d.address, d.extra, d.delegate, d.python, d.workdir] for d in devices.values()]
    print(markdown_table(["device", "kind", "address", "extra", "delegate", "python", "workdir"], rows))
    return 0


def _options(args: argparse.Namespace):
    from edgeship.devices.run import RunOptions
    from edgeship.errors import UsageError

    if args.jobs < 1:
        raise UsageError(f"--jobs must be at least 1, got {args.jobs}")
    if args.timeout <= 0:
        raise UsageError(f"--timeout must be positive seconds, got {args.timeout}")
    return RunOptions(jobs=args.jobs, timeout=args.timeout, accept_new_host_keys=args.accept_new_host_keys)


def _check(args: argparse.Namespace) -> int:
    import asyncio
    import sys

    from edgeship.devices.inventory import load_inventory, select
    from edgeship.devices.run import check_all
    from edgeship.runtime.tables import markdown_table
    from edgeship.devices.targets import fits_summary
    from edgeship.devices.wheels import Platform
    from edgeship.files import atomic_write_json, check_writable

    devices = load_inventory(args.inventory)
    chosen = select(devices, args.names, everything=not args.names)
    if args.json:
        check_writable(args.json)
    found = asyncio.run(check_all(chosen, _options(args)))
    rows, notes = [], []
    for entry in found:
        facts = entry.get("facts")
        if facts is None:
            rows.append([entry["device"], None, None, None, None, None, None, f"⚠️ error: {entry['error']}"])
            continue
        platform = Platform.from_facts(facts)
        entry["runtime"] = fits_summary(platform.machine, platform.python, platform.glibc)
        cpufreq = facts["cpufreq"]
        frequency = (f"{cpufreq['governor']} {cpufreq['cur_mhz']}/{cpufreq['max_mhz']} MHz" if cpufreq["governor"] else "not reported")
        throttled = facts["throttled"]
        throttling = ("no vcgencmd (not a Pi)" if throttled is None else
                      f"{throttled.get('raw')}: {', '.join(throttled.get('flags') or ['none'])}")
        free = facts["disk_free_bytes"]
        rows.append([entry["device"], facts["machine"], facts["os"], f"{facts['python']} (glibc {platform.glibc or '?'})",
                     f"{free / 2**30:.1f} GiB" if free is not None else None, frequency, throttling,
                     f"{entry['extra']}: {entry['runtime'][entry['extra']]}"])
        others = "; ".join(f"{extra} {verdict}" for extra, verdict in entry["runtime"].items() if extra != entry["extra"])
        notes.append(f"- {entry['device']}: other runtimes: {others}")
    print(markdown_table(["device", "arch", "OS", "Python", "free disk", "CPU governor / freq", "throttling", "runtime fits"], rows))
    if notes:
        print("\n" + "\n".join(notes))
    if args.json:
        atomic_write_json(args.json, found)
    unreachable = [entry["device"] for entry in found if "error" in entry]
    if unreachable:
        print(f"edgeship: error: could not reach {', '.join(unreachable)}", file=sys.stderr)
        return 2
    return 0


def _run(args: argparse.Namespace) -> int:
    import sys

    from edgeship.devices.inventory import load_inventory, select
    from edgeship.devices.run import default_out, exit_code, failure_summary, results_table, run_devices
    from edgeship.errors import UsageError
    from edgeship.files import ensure_directory
    from edgeship.manifest import load_manifest
    from edgeship.runtime.options import positive_list

    bundle = Path(args.bundle)
    load_manifest(bundle)
    if args.seconds <= 0:
        raise UsageError(f"--seconds must be positive, got {args.seconds}")
    positive_list(args.threads, "--threads")
    positive_list(args.batch, "--batch")
    if args.picture is not None and not args.picture.is_file():
        raise UsageError(f"--picture {args.picture} is not a file; give a JPEG or PNG to time the end-to-end row on")
    devices = load_inventory(args.inventory)
    chosen = select(devices, [name.strip() for name in args.on.split(",") if name.strip()] if args.on else None, everything=args.all)
    options = _options(args)
    options.bench_options = ["--threads", args.threads, "--batch", args.batch, "--seconds", str(args.seconds)]
    options.edgeship_wheel = args.edgeship_wheel
    options.picture = args.picture
    out = ensure_directory(args.out or default_out(bundle))
    results = run_devices(chosen, bundle, out, options)
    print(results_table(results))
    print(f"results in {out}", file=sys.stderr)
    summary = failure_summary(results)
    if summary:
        print(f"edgeship: error: {summary}", file=sys.stderr)
    return exit_code(results)


def _pack(args: argparse.Namespace) -> int:
    from edgeship.devices.pack import pack_bundle

    written = pack_bundle(Path(args.bundle), args.target, args.out, extra=args.extra, edgeship_wheel=args.edgeship_wheel)
    print(f"wrote {written['out']}: bundle/, {written['wheels']} wheels for {written['platform']}, install.sh")
    print(f"on the device: sh {Path(args.out).name}/install.sh && ~/edgeship/bin/python -m edgeship.runtime selftest {Path(args.out).name}/bundle")
    return 0
