#!/usr/bin/env python3
"""The dependency rule of the engine (DESIGN.md §1): an engine module may
import only modules of lower layers, or of its own layer where the table
says so. Fails, naming the file, the line and the import, on any other
`crate::` path in code (comments and doc links are not imports).

    python3 .ci/layers.py [engine/src]
"""
import pathlib
import re
import sys

# Layer of each top-level module of the crate. A module may use modules of
# strictly lower layers; modules listed in SIDEWAYS may also use each other.
LAYERS = {
    "error": 0, "limits": 0, "events": 0, "threads": 0,
    "name": 1, "layout": 1, "message": 1, "report": 1,
    "format": 2,
    "io": 3,
    "options": 4, "background": 4, "notify": 4, "wake": 4,
    "ctx": 5,
    "group_commit": 6,
    "blob": 7,
    "log": 8,
    "stream": 9, "consumer": 9,
    "request": 10,
    "store": 11,
    "typed": 12,
    "inspect": 13, "repair": 13,
}
SIDEWAYS = {("stream", "consumer"), ("consumer", "stream"), ("repair", "inspect")}
# The inspector and repair read the store with the engine's decoders, not
# with the engine: they may use these and nothing else of it.
TOOLS = {"inspect", "repair"}
TOOL_ALLOWED = {
    "error", "limits", "name", "layout", "report", "format", "io", "options",
    "log::scan", "log::index_file", "consumer::CheckpointBody", "consumer::ConsumerConfig",
    "blob::ClaimCheck",
    "consumer::config", "consumer::state", "consumer::replay", "consumer::journal",
    "inspect", "repair",
}
# Root re-exports that name no module (`crate::{Error, Result}`).
ROOT_ITEMS = {"Error", "Result"}

PATH = re.compile(r"\bcrate::((?:[A-Za-z_][A-Za-z0-9_]*::)*[A-Za-z_][A-Za-z0-9_]*|\{)")


def code_lines(text):
    """Lines with comments and string literals blanked."""
    out = []
    in_block = False
    for line in text.splitlines():
        if in_block:
            if "*/" in line:
                line = line.split("*/", 1)[1]
                in_block = False
            else:
                out.append("")
                continue
        line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
        if "/*" in line:
            line, _, rest = line.partition("/*")
            in_block = "*/" not in rest
        line = line.split("//", 1)[0]
        out.append(line)
    return out


def imports(text):
    """(line number, path) of every `crate::` path, with `use crate::{a, b::c}`
    groups (also over several lines) expanded."""
    lines = code_lines(text)
    joined = "\n".join(lines)
    found = []
    for m in re.finditer(r"\buse\s+crate::\{", joined):
        depth, i = 1, m.end()
        while depth and i < len(joined):
            depth += {"{": 1, "}": -1}.get(joined[i], 0)
            i += 1
        group = joined[m.end():i - 1]
        line = joined.count("\n", 0, m.start()) + 1
        for item in re.split(r",\s*(?![^{]*\})", group):
            item = re.sub(r"\s+", "", item)
            if item:
                found.append((line, item.split("{")[0].rstrip(":")))
    for n, l in enumerate(lines, 1):
        for m in PATH.finditer(l):
            path = m.group(1)
            if path == "{":
                continue
            rest = l[m.end():]
            if rest.startswith("::{"):
                # `crate::a::{b, c}`: each item under its prefix.
                group = rest[3:].split("}", 1)[0]
                for item in group.split(","):
                    item = item.strip().split("::")[0].split(" ")[0]
                    if item and item != "self":
                        found.append((n, f"{path}::{item}"))
                    elif item == "self":
                        found.append((n, path))
                continue
            found.append((n, path))
    return found


def owner(root, f):
    rel = f.relative_to(root).with_suffix("")
    top = rel.parts[0]
    return None if top in ("lib",) else top


def allowed(src, path):
    top = path.split("::")[0]
    if path in ROOT_ITEMS or top in ROOT_ITEMS or top == src:
        return True
    if top not in LAYERS:
        return False
    if src in TOOLS:
        return any(path == a or path.startswith(a + "::") for a in TOOL_ALLOWED) or top in TOOL_ALLOWED
    if (src, top) in SIDEWAYS:
        return True
    return LAYERS[top] < LAYERS[src]


def main():
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "engine/src")
    bad = []
    for f in sorted(root.rglob("*.rs")):
        src = owner(root, f)
        if src is None:
            continue
        if src not in LAYERS:
            bad.append(f"{f}: module `{src}` has no layer in .ci/layers.py")
            continue
        if f.name == "tests.rs":
            # A module's unit tests (`#[cfg(test)] mod tests;`) may use
            # anything of the crate.
            continue
        text = f.read_text()
        # Unit tests may use anything of the crate.
        text = re.split(r"#\[cfg\(test\)\]\s*mod\s+tests", text)[0]
        for line, path in imports(text):
            if not allowed(src, path):
                bad.append(f"{f}:{line}: `{src}` (layer {LAYERS[src]}) may not use `crate::{path}`")
    for b in bad:
        print(b)
    if bad:
        print(f"layering: {len(bad)} import(s) against the rule of DESIGN.md §1")
        return 1
    print("layering: every engine import follows the rule")
    return 0


if __name__ == "__main__":
    sys.exit(main())
