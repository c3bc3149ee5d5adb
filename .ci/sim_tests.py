#!/usr/bin/env python3
"""Every integration test of the engine that uses the `sim` feature's items
must be declared with `required-features = ["sim"]` in engine/Cargo.toml:
the dev-dependency that turns `sim` on in the workspace is dropped when the
crate is packaged, and an undeclared test would not compile there."""
import pathlib
import re
import sys

root = pathlib.Path(__file__).resolve().parent.parent
manifest = (root / "engine" / "Cargo.toml").read_text()
declared = set(
    re.findall(r'\[\[test\]\]\s*name\s*=\s*"([^"]+)"\s*required-features\s*=\s*\["sim"\]', manifest)
)
uses = re.compile(r"spool::(io|format)\b|common::(sim|damage)\b|\bSimFs\b|Inspector::new")
missing = []
for f in sorted((root / "engine" / "tests").glob("*.rs")):
    if uses.search(f.read_text()) and f.stem not in declared:
        missing.append(f.stem)
if missing:
    print("tests using `sim` without required-features = [\"sim\"] in engine/Cargo.toml:")
    for m in missing:
        print("  " + m)
    sys.exit(1)
print(f"ok: {len(declared)} tests declare the sim feature")
