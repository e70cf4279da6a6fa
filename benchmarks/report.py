"""Keeps BENCHMARKS.md as one section per benchmark tool, each rewritten by its tool.

A section is delimited by ``<!-- begin NAME -->`` / ``<!-- end NAME -->`` markers; a rerun
replaces its own section and leaves the others untouched.
"""
import os
import re

from tftransfer.io_utils import atomic_write_text

DEFAULT_PATH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                            "BENCHMARKS.md")
_HEADER = ("# Benchmarks\n\nEvery figure below was written by the tool named in its section; "
           "rerun that command to refresh it. Ratios are measured within one process, "
           "because these machines are noisy.\n")


def update_section(name, markdown, path=DEFAULT_PATH):
    """Replaces (or appends) the section ``name`` of the benchmark file with ``markdown``."""
    begin, end = f"<!-- begin {name} -->", f"<!-- end {name} -->"
    block = f"{begin}\n{markdown.strip()}\n{end}\n"
    text = open(path, encoding="utf-8").read() if os.path.exists(path) else _HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end) + r"\n?", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip("\n") + "\n\n" + block
    atomic_write_text(path, text)
    return path


def publish(name, markdown, write, path=DEFAULT_PATH):
    """Prints a benchmark's ``markdown``; with ``write`` also replaces its section ``name`` of
    BENCHMARKS.md (``update_section``) and says where. Returns the path written, or None."""
    print(markdown)
    if not write:
        return None
    written = update_section(name, markdown, path)
    print(f"written to {written}")
    return written
