#!/usr/bin/env python3
"""Check trace-bench TensorBoard event files with the real TensorBoard loader.

Usage:
    check_tensorboard.py EXPECT_JSON

EXPECT_JSON is a file of the form

    {"runs": [{"logdir": "path/to/run",
               "scalars": {"tag": [[step, value], ...]},
               "texts":   {"tag": [[step, "text"], ...]}}]}

A relative "logdir" is resolved against the directory holding EXPECT_JSON.
Each logdir is loaded with TensorBoard's EventAccumulator (all events kept),
and for every expected tag the events must have exactly the listed steps, in
order, with scalar values equal to float32(value) (NaN matches NaN) and text
equal to the expected string. Tags that are not listed are ignored.

Prints one "OK" line per run; on any mismatch prints every problem to stderr
and exits 1 (2 for usage or input errors). Needs only the Python standard
library and the `tensorboard` package.
"""

import json
import math
import os
import struct
import sys


def f32(v):
    """Rounds a Python float to the nearest float32, as the writer stores it.

    Values beyond the float32 range round to +-inf (IEEE round-to-nearest,
    like Rust's `as f32`); `struct.pack` would raise instead.
    """
    v = float(v)
    try:
        return struct.unpack("<f", struct.pack("<f", v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


def same_float(a, b):
    if math.isnan(a) and math.isnan(b):
        return True
    return a == b


def text_of(tensor_proto, tensor_util):
    """Decodes the (scalar) string tensor of a text summary to str."""
    try:
        arr = tensor_util.make_ndarray(tensor_proto)
        items = [arr.item()] if arr.ndim == 0 else list(arr.flat)
    except Exception:  # fall back to the raw proto field
        items = list(tensor_proto.string_val)
    if len(items) != 1:
        raise ValueError("expected a scalar string tensor, got %d elements" % len(items))
    item = items[0]
    if isinstance(item, bytes):
        return item.decode("utf-8")
    return str(item)


def check_run(run, base_dir, event_accumulator, tensor_util):
    """Returns (logdir, list of problems, summary string)."""
    problems = []
    logdir = run.get("logdir")
    if not isinstance(logdir, str) or not logdir:
        return "<missing>", ['run has no "logdir" string'], ""
    if not os.path.isabs(logdir):
        logdir = os.path.join(base_dir, logdir)
    if not os.path.isdir(logdir):
        return logdir, ["logdir does not exist or is not a directory"], ""
    if not any("tfevents" in name for name in os.listdir(logdir)):
        return logdir, ["logdir holds no *tfevents* file"], ""

    acc = event_accumulator.EventAccumulator(
        logdir, size_guidance={"scalars": 0, "tensors": 0}
    )
    acc.Reload()
    tags = acc.Tags()

    scalars = run.get("scalars", {}) or {}
    texts = run.get("texts", {}) or {}
    n_scalars = n_texts = 0

    for tag, expected in scalars.items():
        if tag not in tags.get("scalars", []):
            problems.append(
                "scalar tag %r not found (scalar tags: %s)"
                % (tag, sorted(tags.get("scalars", [])))
            )
            continue
        events = acc.Scalars(tag)
        got_steps = [e.step for e in events]
        want_steps = [int(s) for s, _ in expected]
        if got_steps != want_steps:
            problems.append(
                "scalar %r: steps %s, expected %s" % (tag, got_steps, want_steps)
            )
            continue
        for e, (step, value) in zip(events, expected):
            want = f32(value)
            if not same_float(e.value, want):
                problems.append(
                    "scalar %r step %d: value %r, expected float32(%r) = %r"
                    % (tag, step, e.value, value, want)
                )
            n_scalars += 1

    for tag, expected in texts.items():
        if tag not in tags.get("tensors", []):
            problems.append(
                "text tag %r not found (tensor tags: %s)"
                % (tag, sorted(tags.get("tensors", [])))
            )
            continue
        plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
        if plugin != "text":
            problems.append("text %r: plugin_name %r, expected 'text'" % (tag, plugin))
        events = acc.Tensors(tag)
        got_steps = [e.step for e in events]
        want_steps = [int(s) for s, _ in expected]
        if got_steps != want_steps:
            problems.append(
                "text %r: steps %s, expected %s" % (tag, got_steps, want_steps)
            )
            continue
        for e, (step, want) in zip(events, expected):
            try:
                got = text_of(e.tensor_proto, tensor_util)
            except Exception as err:
                problems.append("text %r step %d: cannot decode: %s" % (tag, step, err))
                continue
            if got != want:
                problems.append(
                    "text %r step %d: %r, expected %r" % (tag, step, got, want)
                )
            n_texts += 1

    summary = "%d scalar tag(s)/%d point(s), %d text tag(s)/%d entry(ies)" % (
        len(scalars),
        n_scalars,
        len(texts),
        n_texts,
    )
    return logdir, problems, summary


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    expect_path = argv[1]
    try:
        with open(expect_path, encoding="utf-8") as f:
            spec = json.load(f)
    except (OSError, ValueError) as err:
        print("check_tensorboard: cannot read %s: %s" % (expect_path, err), file=sys.stderr)
        return 2
    runs = spec.get("runs") if isinstance(spec, dict) else None
    if not isinstance(runs, list) or not runs:
        print('check_tensorboard: %s: need a non-empty "runs" list' % expect_path, file=sys.stderr)
        return 2

    try:
        from tensorboard.backend.event_processing import event_accumulator
        from tensorboard.util import tensor_util
    except ImportError as err:
        print("check_tensorboard: cannot import tensorboard: %s" % err, file=sys.stderr)
        return 2

    base_dir = os.path.dirname(os.path.abspath(expect_path))
    failed = 0
    for i, run in enumerate(runs):
        if not isinstance(run, dict):
            print("FAIL run %d: not an object" % i, file=sys.stderr)
            failed += 1
            continue
        try:
            logdir, problems, summary = check_run(
                run, base_dir, event_accumulator, tensor_util
            )
        except (TypeError, ValueError, AttributeError) as err:
            logdir, problems, summary = run.get("logdir"), [
                "malformed expectation: %s: %s" % (type(err).__name__, err)
            ], ""
        if problems:
            failed += 1
            print("FAIL run %d %s:" % (i, logdir), file=sys.stderr)
            for p in problems:
                print("  - " + p, file=sys.stderr)
        else:
            print("OK %s: %s" % (logdir, summary))
    if failed:
        print("check_tensorboard: %d of %d run(s) failed" % (failed, len(runs)), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
