#!/usr/bin/env python3
"""Differential mode: runs the Python interop suite against RabbitMQ and against
the broker under test, each time through a recorder, and compares what the
two brokers sent, test by test (see README.md).

    AMQP_URL=amqp://...(broker under test) differential.py [pytest arguments]

INTEROP_DIFF_REFERENCE_URL names the reference broker (default: RabbitMQ on
127.0.0.1:5672, guest/guest); INTEROP_DIFF_KEEP names a directory in which to
keep the recordings, for compare.py, instead of a temporary one.
"""

import os
import pathlib
import subprocess
import sys
import tempfile
import urllib.parse

import compare
from recorder import Recorder

HERE = pathlib.Path(__file__).parent
SUITE = HERE.parent / "python" / "run"
DEFAULT_REFERENCE_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def record_suite(name: str, url: str, directory: pathlib.Path, pytest_args: list[str]):
    """Runs the suite against url through a recorder, leaving frames.jsonl and outcomes.json in directory."""
    directory.mkdir(parents=True, exist_ok=True)
    parts = urllib.parse.urlsplit(url)
    recorder = Recorder((parts.hostname, parts.port or 5672), directory / "frames.jsonl", directory / "current-test")
    credentials, at, _ = parts.netloc.rpartition("@")
    through_recorder = parts._replace(netloc=f"{credentials}{at}127.0.0.1:{recorder.port}").geturl()
    env = dict(
        os.environ,
        AMQP_URL=through_recorder,
        INTEROP_DIFF_CURRENT_TEST=str(directory / "current-test"),
        INTEROP_DIFF_OUTCOMES=str(directory / "outcomes.json"),
        PYTHONPATH=os.pathsep.join(filter(None, [str(HERE / "plugin"), os.environ.get("PYTHONPATH")])),
    )
    # Only one of the two brokers could be restarted, and only one serves the
    # amqps listener these variables name, which would make the runs
    # incomparable: the restart and TLS tests skip against both.
    for only_one_broker in ("INTEROP_RESTART_BROKER", "AMQPS_URL", "AMQPS_CA_FILE"):
        env.pop(only_one_broker, None)
    print(f"=== differential: python suite against {name} ({url}) through a recorder ===", flush=True)
    try:
        result = subprocess.run([str(SUITE), "-p", "interop_diff_plugin", *pytest_args], env=env)
    finally:
        recorder.stop()
    # pytest exits 1 when tests failed, which the comparison reports; anything else means no usable run.
    if result.returncode not in (0, 1):
        sys.exit(f"the suite could not run against {name} (pytest exit status {result.returncode})")


def main() -> int:
    subject_url = os.environ.get("AMQP_URL")
    if not subject_url:
        sys.exit("AMQP_URL must name the broker under test (interop/run --diff sets it)")
    reference_url = os.environ.get("INTEROP_DIFF_REFERENCE_URL", DEFAULT_REFERENCE_URL)
    keep = os.environ.get("INTEROP_DIFF_KEEP")
    with tempfile.TemporaryDirectory() as scratch:
        recordings = pathlib.Path(keep or scratch)
        record_suite(compare.REFERENCE, reference_url, recordings / compare.REFERENCE, sys.argv[1:])
        record_suite(compare.SUBJECT, subject_url, recordings / compare.SUBJECT, sys.argv[1:])
        return compare.report(recordings / compare.REFERENCE, recordings / compare.SUBJECT,
                              compare.load_allowlist(compare.HERE / "allowlist.toml"))


if __name__ == "__main__":
    sys.exit(main())
