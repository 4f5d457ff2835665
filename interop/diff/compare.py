#!/usr/bin/env python3
"""Compares two recordings of the same suite, test by test, and prints every difference.

    compare.py REFERENCE_DIR SUBJECT_DIR [--allowlist FILE]

Each directory holds a recording (frames.jsonl) and the tests' outcomes
(outcomes.json), as differential.py writes them. The exit status is 1 when a
difference remains that the allowlist does not explain, else 0.
"""

import argparse
import dataclasses
import difflib
import fnmatch
import pathlib
import re
import sys
import tomllib

import normalise

HERE = pathlib.Path(__file__).parent
REFERENCE, SUBJECT = "rabbitmq", "warren"


@dataclasses.dataclass
class Difference:
    """One difference: a field of an event, or events present on one side only, or the outcome."""

    where: str  # e.g. "connection 1, channel 1, replies, event 3 (queue.declare-ok)"
    lines: list[str]

    def text(self) -> str:
        return "\n".join([self.where + ":", *self.lines])


@dataclasses.dataclass
class Allowed:
    """An allowlist entry: a known, deliberate difference (match given), or tests whose
    frames depend on timing, so that only their outcomes are compared (no match)."""

    tests: str  # glob over test ids
    match: re.Pattern | None  # searched in the difference as printed
    reason: str
    used: int = 0

    def covers(self, test: str) -> bool:
        return fnmatch.fnmatchcase(test, self.tests)

    def allows(self, test: str, difference: Difference) -> bool:
        return self.covers(test) and self.match is not None and bool(self.match.search(difference.text()))

    def describe(self) -> str:
        what = f"/{self.match.pattern}/" if self.match else "outcome only"
        return f"{self.tests} {what} ({self.used} time(s)): {' '.join(self.reason.split())}"


def load_allowlist(path: pathlib.Path) -> list[Allowed]:
    entries = tomllib.loads(path.read_text())
    return [Allowed(entry["tests"], re.compile(entry["match"]), entry["reason"])
            for entry in entries.get("difference", [])] + [
        Allowed(entry["tests"], None, entry["reason"]) for entry in entries.get("outcome_only", [])]


def compare_test(reference: normalise.Test, subject: normalise.Test, outcome_only: bool) -> list[Difference]:
    differences = []
    if reference.outcome != subject.outcome:
        differences.append(Difference("outcome", [f"{REFERENCE}: {reference.outcome}", f"{SUBJECT}: {subject.outcome}"]))
    if outcome_only:
        return differences
    count = max(len(reference.connections), len(subject.connections))
    for index in range(count):
        ours = dict(reference.connections[index]) if index < len(reference.connections) else {}
        theirs = dict(subject.connections[index]) if index < len(subject.connections) else {}
        lanes = list(ours) + [lane for lane in theirs if lane not in ours]
        for lane in lanes:
            where = f"connection {index + 1}, {lane}"
            differences += compare_lane(where, ours.get(lane, ()), theirs.get(lane, ()))
    return differences


def compare_lane(where: str, reference: tuple, subject: tuple) -> list[Difference]:
    differences = []
    matcher = difflib.SequenceMatcher(None, reference, subject, autojunk=False)
    for op, ref_start, ref_end, sub_start, sub_end in matcher.get_opcodes():
        if op == "equal":
            continue
        ref_events, sub_events = reference[ref_start:ref_end], subject[sub_start:sub_end]
        if len(ref_events) == len(sub_events):
            # The same number of events at the same place: show what changed in each pair.
            for offset, (ours, theirs) in enumerate(zip(ref_events, sub_events)):
                differences += compare_events(f"{where}, event {ref_start + offset + 1}", ours, theirs)
        else:
            lines = [f"{REFERENCE} only: {event.show()}" for event in ref_events]
            lines += [f"{SUBJECT} only: {event.show()}" for event in sub_events]
            differences.append(Difference(f"{where}, event {ref_start + 1}", lines))
    return differences


def compare_events(where: str, reference: normalise.Rendered, subject: normalise.Rendered) -> list[Difference]:
    """One difference per field that differs, so that each can be judged (and allowed) on its own."""
    if reference.kind != subject.kind:
        return [Difference(where, [f"{REFERENCE}: {reference.show()}", f"{SUBJECT}: {subject.show()}"])]
    ours, theirs = dict(reference.fields), dict(subject.fields)
    return [
        Difference(f"{where} ({reference.kind})", [
            f"{name}: {REFERENCE} {reference.value(name) or '(absent)'}, {SUBJECT} {subject.value(name) or '(absent)'}"
        ])
        for name in list(ours) + [name for name in theirs if name not in ours]
        if ours.get(name) != theirs.get(name)
    ]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=pathlib.Path)
    parser.add_argument("subject", type=pathlib.Path)
    parser.add_argument("--allowlist", type=pathlib.Path, default=HERE / "allowlist.toml")
    args = parser.parse_args(argv)
    return report(args.reference, args.subject, load_allowlist(args.allowlist))


def load(directory: pathlib.Path) -> dict[str, normalise.Test]:
    return normalise.load(directory / "frames.jsonl", directory / "outcomes.json")


def report(reference_dir: pathlib.Path, subject_dir: pathlib.Path, allowlist: list[Allowed]) -> int:
    reference, subject = load(reference_dir), load(subject_dir)
    missing = normalise.Test("not run", [])
    identical, outcomes_only, allowed_only, differing = 0, 0, 0, []
    for test in sorted(set(reference) | set(subject)):
        outcome_only = next((entry for entry in allowlist if entry.match is None and entry.covers(test)), None)
        if outcome_only:
            outcome_only.used += 1
        differences = compare_test(reference.get(test, missing), subject.get(test, missing), bool(outcome_only))
        remaining = []
        for difference in differences:
            entry = next((entry for entry in allowlist if entry.allows(test, difference)), None)
            if entry:
                entry.used += 1
            else:
                remaining.append(difference)
        if remaining:
            differing.append(test)
            outcomes = f"{REFERENCE}: {reference.get(test, missing).outcome}, {SUBJECT}: {subject.get(test, missing).outcome}"
            print(f"\n=== {test} ({outcomes}): {len(remaining)} difference(s)")
            where = None
            for difference in remaining:
                if difference.where != where:
                    where = difference.where
                    print(where + ":")
                for line in difference.lines:
                    print("  " + line)
        elif differences:
            allowed_only += 1
        elif outcome_only:
            outcomes_only += 1
        else:
            identical += 1

    compared = identical + outcomes_only + allowed_only + len(differing)
    print(f"\n=== differential summary: {compared} tests compared, {identical} identical, "
          f"{outcomes_only} with the same outcome (compared by outcome only), "
          f"{allowed_only} differing only as the allowlist allows, {len(differing)} differing")
    for entry in allowlist:
        print(f"allowlisted: {entry.describe()}")
    for test in differing:
        print(f"differs: {test}")
    return 1 if differing else 0


if __name__ == "__main__":
    sys.exit(main())
