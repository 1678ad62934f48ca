#!/usr/bin/env python3
"""The `rust-version` the workspace declares must be true of its dependencies: no crate in the
lock file may need a newer Rust. (That the workspace's own code builds on it is checked by
clippy's `incompatible_msrv` lint, which reads the same field, for the standard library's APIs.)
Reads `cargo metadata` on stdin.
"""
import json
import sys


def version(text):
    return tuple(int(part) for part in text.split("."))


metadata = json.load(sys.stdin)
members = set(metadata["workspace_members"])
ours = {p["rust_version"] for p in metadata["packages"] if p["id"] in members}
if len(ours) != 1 or None in ours:
    sys.exit(f"workspace members declare rust-version {sorted(map(str, ours))}: want one, inherited")
declared = ours.pop()
newer = sorted(
    (version(p["rust_version"]), p["name"], p["version"])
    for p in metadata["packages"]
    if p["id"] not in members and p.get("rust_version") and version(p["rust_version"]) > version(declared)
)
if newer:
    need = ".".join(map(str, newer[-1][0]))
    names = ", ".join(f"{name} {v}" for _, name, v in newer[-5:])
    sys.exit(f"rust-version {declared} is not true: {names} need Rust {need}; raise it in Cargo.toml")
print(f"rust-version {declared}: every dependency builds on it")
