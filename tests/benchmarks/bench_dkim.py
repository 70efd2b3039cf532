"""DKIM's cost on the hot path: sends/s with and without signing, in one run.

Run from the repository root (RabbitMQ and Redis on localhost; smtp-sink when installed)::

    .venv/bin/python tests/benchmarks/bench_dkim.py [--jobs 3000] [--rounds 2] [--workers 1]

Keys are made for the run (RSA 2048 and Ed25519) for the jobs' sender domain. Each round
drains ``--jobs`` demo-like jobs through ``--workers`` x ``mailfleet worker --burst`` once
per mode, interleaved so that every mode meets the machine in the same state: ``none`` (no
MAILFLEET_DKIM_KEYS), ``ed25519``, ``rsa`` and ``dual`` (both signatures). Each in a fresh
namespace, removed afterwards. It prints, per mode, the steady rate at the relay (first to
last message accepted), the wall rate (first worker start to last exit), the workers' CPU
per message, and the signing step alone in this process (µs per message, one thread), with
the ratio of each rate to ``none``'s from the same round. No figure is asserted.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from bench_throughput import (
    clean_up,
    make_jobs,
    publish,
    run_workers,
    start_relay,
    worker_env,
)
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mailfleet.shared.dkim_config import DkimKeyFile
from mailfleet.shared.settings import load_settings
from mailfleet.worker.mime.build import build_message
from mailfleet.worker.mime.dkim import DkimSigner
from mailfleet.worker.mime.dkim_keys import load_keys

DOMAIN = "mailfleet.test"  # the sender domain of make_jobs
MODES = ("none", "ed25519", "rsa", "dual")


@dataclass(frozen=True)
class Result:
    mode: str
    at_relay: float  # sends/s, first to last accepted
    wall: float  # sends/s, first start to last exit
    cpu_ms: float  # worker CPU per message
    delivered: int


def write_keys(folder: Path) -> dict[str, dict[str, list[dict[str, str]]]]:
    """The MAILFLEET_DKIM_KEYS value of each signing mode, with keys written to ``folder``."""
    pem, pkcs8, none = (
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    rsa_file, ed_file = folder / "rsa.pem", folder / "ed25519.pem"
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    rsa_file.write_bytes(rsa_key.private_bytes(pem, pkcs8, none))
    ed_file.write_bytes(ed25519.Ed25519PrivateKey.generate().private_bytes(pem, pkcs8, none))
    rsa_entry = {"selector": "rsa1", "key_file": str(rsa_file)}
    ed_entry = {"selector": "ed1", "key_file": str(ed_file)}
    return {
        "ed25519": {DOMAIN: [ed_entry]},
        "rsa": {DOMAIN: [rsa_entry]},
        "dual": {DOMAIN: [rsa_entry, ed_entry]},
    }


def signing_us(keys: dict[str, list[dict[str, str]]], messages: list[bytes]) -> float:
    """The signing step alone: µs per message in this thread."""
    config = {
        domain: [DkimKeyFile.model_validate(entry) for entry in entries]
        for domain, entries in keys.items()
    }
    signer = DkimSigner(load_keys(config))
    started = time.perf_counter()
    for message in messages:
        signer.sign(message, DOMAIN)
    return (time.perf_counter() - started) / len(messages) * 1e6


def run_mode(mode: str, keys: dict[str, object] | None, args: argparse.Namespace) -> Result:
    relay = start_relay(args.relay)
    try:
        settings = load_settings(namespace=f"bench-dkim-{uuid.uuid4().hex[:8]}")
        try:
            publish(settings, make_jobs(args.jobs))
            env = worker_env(settings.namespace, relay.url, args.concurrency, None)
            if keys is not None:
                env["MAILFLEET_DKIM_KEYS"] = json.dumps(keys)
            with tempfile.TemporaryDirectory() as logs:
                run = run_workers(
                    relay, count=args.workers, env=env, expected=args.jobs, wrap=[], logs=Path(logs)
                )
        finally:
            clean_up(settings)
    finally:
        relay.stop()
    received = run.relay.received
    return Result(
        mode=mode,
        at_relay=received / run.relay.span if run.relay.span else 0.0,
        wall=received / run.seconds if run.seconds else 0.0,
        cpu_ms=run.worker_cpu / received * 1000 if received else 0.0,
        delivered=received,
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--relay", choices=["auto", "smtp-sink", "aiosmtpd"], default="auto")
    parser.add_argument(
        "--modes", default=",".join(MODES), help="comma list of " + ", ".join(MODES)
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    modes = [mode for mode in args.modes.split(",") if mode in MODES]
    with tempfile.TemporaryDirectory() as folder:
        keys = write_keys(Path(folder))
        messages = [build_message(job) for job in make_jobs(300)]
        sign_cost = {mode: signing_us(keys[mode], messages) for mode in modes if mode != "none"}
        rounds: list[dict[str, Result]] = []
        for number in range(args.rounds):
            results = {}
            for mode in modes:
                results[mode] = run_mode(mode, keys.get(mode), args)
                print(
                    f"round {number + 1} {mode:<8} {results[mode].at_relay:8.0f} sends/s at relay",
                    file=sys.stderr,
                )
            rounds.append(results)
    print(
        f"\n{args.jobs} jobs, {args.workers} worker(s) x {args.concurrency} threads, "
        f"{args.rounds} round(s), medians"
    )
    print(
        f"{'mode':<9} {'at relay/s':>11} {'wall/s':>8} {'CPU ms/msg':>11} "
        f"{'vs none':>8} {'sign µs':>8} {'delivered':>10}"
    )
    failed = False
    for mode in modes:
        at_relay = statistics.median(r[mode].at_relay for r in rounds)
        wall = statistics.median(r[mode].wall for r in rounds)
        cpu = statistics.median(r[mode].cpu_ms for r in rounds)
        ratios = [
            r[mode].at_relay / r["none"].at_relay
            for r in rounds
            if "none" in r and r["none"].at_relay
        ]
        ratio = f"{statistics.median(ratios):.2f}" if ratios else "-"
        delivered = min(r[mode].delivered for r in rounds)
        failed |= delivered != args.jobs
        sign = f"{sign_cost[mode]:.0f}" if mode in sign_cost else "-"
        print(
            f"{mode:<9} {at_relay:11.0f} {wall:8.0f} {cpu:11.2f} {ratio:>8} {sign:>8} "
            f"{delivered:>10}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
