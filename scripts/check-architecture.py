#!/usr/bin/env python3
"""The crate map of docs/ARCHITECTURE.md, enforced: fails when a workspace crate gains a
dependency its layer forbids (a collector on the store, SQL outside the store, AWS outside the
AWS layer, I/O in the pure crates). Reads `cargo metadata --format-version 1` on stdin.

A new arrow between workspace crates is a design decision: add it to ALLOWED and to the map in
docs/ARCHITECTURE.md in the same change, with the reason.
"""
import json
import sys

# Normal and build dependencies between workspace crates ("cloudspend-" left off), by layer.
ALLOWED = {
    # Domain: types and pure functions.
    "core": set(),
    "anomaly": {"core"},
    "secrets": {"core"},
    # Edges: the database, AWS, the browser files.
    "store": {"core"},
    "aws-access": {"core"},
    "collect-ec2": {"core", "aws-access"},
    "collect-cloudwatch": {"core", "aws-access"},
    "collect-costexplorer": {"core", "aws-access"},
    "collect-cur": {"core", "aws-access"},
    "connect-check": {"core", "aws-access", "collect-ec2", "collect-costexplorer"},
    "web": set(),
    # Application: what the edges are put together for.
    "insights": {"core", "anomaly", "secrets", "store"},
    "collection": {
        "core", "aws-access", "secrets", "store", "insights",
        "collect-ec2", "collect-cloudwatch", "collect-costexplorer", "collect-cur",
    },
    # Delivery: HTTP and the command line.
    "api": {
        "core", "anomaly", "aws-access", "secrets", "store", "insights", "collection",
        "connect-check", "collect-ec2", "collect-cloudwatch", "collect-costexplorer", "web",
    },
    "cloudspend": {
        "core", "anomaly", "aws-access", "secrets", "store", "insights", "collection",
        "collect-cur", "api",
    },
}

# External crates only some layers may use: (what, crates that may, why).
RESERVED = [
    (lambda d: d == "sqlx", {"store"}, "SQL lives in the store only"),
    (lambda d: d == "aws-config" or d.startswith("aws-sdk-"),
     {"aws-access", "collect-ec2", "collect-cloudwatch", "collect-costexplorer", "collect-cur",
      "connect-check"},
     "AWS is called from the AWS access layer, the collectors and the connect check only"),
    (lambda d: d in {"axum", "tower", "tower-http", "utoipa-axum"}, {"api", "web"},
     "HTTP serving is the API's and the web crate's"),
    (lambda d: d in {"tokio", "reqwest", "hyper", "lettre", "sqlx"} or d.startswith("aws-"),
     set(ALLOWED) - {"core", "anomaly", "secrets"},
     "core, anomaly and secrets are pure: no I/O, no runtime"),
]


def short(name):
    return name.removeprefix("cloudspend-") if name != "cloudspend" else name


def main():
    metadata = json.load(sys.stdin)
    members = set(metadata["workspace_members"])
    packages = [p for p in metadata["packages"] if p["id"] in members]
    ours = {p["name"] for p in packages}
    problems = []
    for package in packages:
        crate = short(package["name"])
        if crate not in ALLOWED:
            problems.append(f"{package['name']}: a new crate; give it a layer in ALLOWED "
                            "(scripts/check-architecture.py) and docs/ARCHITECTURE.md")
            continue
        for dep in package["dependencies"]:
            if dep["kind"] == "dev":
                continue
            name = dep["name"]
            if name in ours:
                if short(name) not in ALLOWED[crate]:
                    problems.append(f"{package['name']} depends on {name}: an arrow the map "
                                    "forbids (docs/ARCHITECTURE.md)")
                continue
            for reserved, may, why in RESERVED:
                if reserved(name) and crate not in may:
                    problems.append(f"{package['name']} depends on {name}: {why}")
    if problems:
        sys.exit("architecture check failed:\n  " + "\n  ".join(problems))
    print(f"architecture: {len(packages)} crates, every dependency within its layer")


main()
