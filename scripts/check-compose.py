#!/usr/bin/env python3
"""Checks docker-compose.yml without Docker: used by scripts/test.sh where `docker-compose` is not
installed (an ordinary user cannot apt-get it). It parses the file and checks what `docker-compose
config -q` would refuse: an unknown top-level key, a service with neither image nor build, a
depends_on naming no service, a named volume not declared, and a variable with no value in
.env.example and no default. Needs PyYAML (the cfn-lint virtualenv has it).

usage: check-compose.py docker-compose.yml .env.example
"""
import re
import sys

import yaml

compose_path, env_path = sys.argv[1], sys.argv[2]
with open(compose_path, encoding="utf-8") as f:
    text = f.read()
compose = yaml.safe_load(text)
env = {}
with open(env_path, encoding="utf-8") as f:
    for line in f:
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip()

problems = []
unknown = set(compose) - {"version", "name", "services", "volumes", "networks", "configs", "secrets"}
if unknown:
    problems.append(f"unknown top-level keys: {sorted(unknown)}")
services = compose.get("services") or {}
volumes = set((compose.get("volumes") or {}).keys())
for name, service in services.items():
    if not isinstance(service, dict) or not ({"image", "build"} & set(service)):
        problems.append(f"service {name} has neither image nor build")
        continue
    depends = service.get("depends_on") or []
    for other in depends if isinstance(depends, list) else depends.keys():
        if other not in services:
            problems.append(f"service {name} depends on {other}, which is not a service")
    for volume in service.get("volumes") or []:
        source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
        if source and not source.startswith((".", "/", "~")) and source not in volumes:
            problems.append(f"service {name} mounts volume {source}, which is not declared")
# ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error} and $VAR, as compose interpolates them.
for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(:?[-?][^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)", text):
    var = match.group(1) or match.group(3)
    modifier = match.group(2) or ""
    if var not in env and not modifier.lstrip(":").startswith("-"):
        problems.append(f"${{{var}}} has no value in {env_path} and no default")
if problems:
    for p in problems:
        print(f"{compose_path}: {p}", file=sys.stderr)
    sys.exit(1)
print(f"{compose_path}: {len(services)} services, structure and variables checked (no Docker here)")
