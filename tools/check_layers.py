#!/usr/bin/env python3
"""Checks that the crate's modules only call downwards (docs/how-it-works.md, "Layers").

Reads every `crate::...` and `super::...` path in src/ (imports and inline paths; comments,
doc comments and each file's trailing unit-test module left out), maps each to the module file it names, and fails if
  * the file-level graph has a cycle, or
  * a file depends on a top-level module ranked above its own in LAYERS.
Prints the top-level graph it found. Exit status 0 when both hold.
"""
import os
import re
import sys

# Top to bottom. A module may use anything ranked at or below it (its own layer included).
LAYERS = [
    ["ffi"],
    ["host"],
    ["event"],
    ["sys"],
    ["rt"],
    ["hci"],
    ["port"],
    ["error"],
    ["thread"],
    ["handle"],
    ["uuid"],
]
RANK = {m: i for i, layer in enumerate(LAYERS) for m in layer}
# The crate root holds the module list, the allocator and abort(); test support sits outside
# the layers, as the stand-in for the firmware.
OUTSIDE = {"lib", "test_support", "testing"}

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src")


def module_of(path):
    """src/host/gap.rs -> ['host', 'gap']; src/ffi/mod.rs -> ['ffi']."""
    rel = os.path.relpath(path, SRC)[:-3].split(os.sep)
    if rel[-1] == "mod":
        rel = rel[:-1]
    return rel


def files():
    for root, _, names in os.walk(SRC):
        for n in names:
            if n.endswith(".rs"):
                yield os.path.join(root, n)


def strip_comments(text):
    # A file's unit tests (its trailing `#[cfg(test)] mod tests`) may use the test support.
    text = re.split(r"#\[cfg\(test\)\]\s*mod tests\b", text)[0]
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def paths_in(text):
    """Every path starting with crate:: or super::, expanding `use a::{b, c::d}` groups."""
    out = []
    for m in re.finditer(r"\b(crate|super)((?:::(?:\w+|\{[^;]*?\}))+)", text):
        head, tail = m.group(1), m.group(2)
        out.extend(expand(head, tail))
    return out


def expand(prefix, tail):
    tail = tail.strip()
    if not tail:
        return [prefix]
    if tail.startswith("::{"):
        inner = tail[3:tail.rindex("}")]
        parts, depth, cur = [], 0, ""
        for ch in inner:
            if ch == "," and depth == 0:
                parts.append(cur)
                cur = ""
                continue
            depth += ch == "{"
            depth -= ch == "}"
            cur += ch
        parts.append(cur)
        res = []
        for p in parts:
            p = p.strip()
            if p and p != "self":
                res.extend(expand(prefix, "::" + p.replace(" ", "")))
            elif p == "self":
                res.append(prefix)
        return res
    m = re.match(r"::(\w+)(.*)", tail, re.S)
    return expand(prefix + "::" + m.group(1), m.group(2))


def resolve(segs, known):
    """The longest prefix of `segs` that names a module file."""
    for n in range(len(segs), 0, -1):
        if tuple(segs[:n]) in known:
            return tuple(segs[:n])
    return None


def main():
    mods = {tuple(module_of(f)): f for f in files()}
    known = set(mods)
    edges = {m: set() for m in mods}
    for mod, f in mods.items():
        text = strip_comments(open(f, encoding="utf-8").read())
        for p in paths_in(text):
            segs = p.split("::")
            if segs[0] == "crate":
                target = segs[1:]
            else:
                base = list(mod if not f.endswith("mod.rs") else mod + ("_",))
                while segs and segs[0] == "super":
                    base = base[:-1]
                    segs = segs[1:]
                target = base + segs
            dep = resolve(target, known)
            if dep and dep != mod and dep != mod[: len(dep)]:
                edges[mod].add(dep)
    errors = []
    for mod, deps in edges.items():
        top = mod[0] if mod else "lib"
        if top in OUTSIDE:
            continue
        for d in deps:
            if d[0] in OUTSIDE:
                errors.append(f"{'::'.join(mod)} uses {'::'.join(d)}, which is outside the layers")
            elif RANK[d[0]] < RANK[top]:
                errors.append(f"{'::'.join(mod)} ({top}) calls up into {'::'.join(d)} ({d[0]})")
    # Cycles among files (Tarjan's strongly connected components).
    index, low, stack, on, sccs, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(comp)

    sys.setrecursionlimit(10000)
    for v in edges:
        if v not in index:
            visit(v)
    for comp in sccs:
        errors.append("cycle: " + " <-> ".join(sorted("::".join(c) for c in comp)))
    top_edges = {}
    for mod, deps in edges.items():
        for d in deps:
            a, b = (mod[0] if mod else "lib"), d[0]
            if a != b:
                top_edges.setdefault(a, set()).add(b)
    for a in sorted(top_edges, key=lambda m: RANK.get(m, -1)):
        print(f"{a:>12} -> {', '.join(sorted(top_edges[a], key=lambda m: RANK.get(m, 99)))}")
    if errors:
        print("\n".join(errors))
        return 1
    print(f"{len(mods)} modules, no cycle, every dependency points down")
    return 0


if __name__ == "__main__":
    sys.exit(main())
