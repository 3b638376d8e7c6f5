#!/usr/bin/env python3
"""Fails when the top-level modules of a crate's src/ import each other in a cycle.

A module here is a top-level file or folder of src/ (`oauth/`, `state.rs`); an import is
any `crate::NAME` path (or `use crate::{NAME, ...}`) outside comments. Usage:
    module_cycles.py crates/latchkey-server/src
Prints each cycle with the imports that make it and exits 1; prints "no cycles" and exits 0.
"""
import collections
import glob
import os
import re
import sys


def graph(src):
    tops = {p.split(os.sep)[0].removesuffix(".rs") for p in os.listdir(src)}
    edges, why = collections.defaultdict(set), collections.defaultdict(set)
    for path in glob.glob("**/*.rs", root_dir=src, recursive=True):
        top = path.split(os.sep)[0].removesuffix(".rs")
        with open(os.path.join(src, path)) as f:
            text = re.sub(r"//.*", "", f.read())
        found = [(m.group(1), m.group(0)) for m in re.finditer(r"crate::(\w+)(::[\w:]+)?", text)]
        for group in re.finditer(r"use crate::\{([^}]*)\}", text):
            found += [(n, "crate::{" + n + "}") for n in re.findall(r"\b(\w+)\b", group.group(1))]
        for dst, how in found:
            if dst != top and dst in tops:
                edges[top].add(dst)
                why[(top, dst)].add(f"{path}: {how}")
    return edges, why


def cycles(edges):
    index, low, stack, on, found, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def main():
    src = sys.argv[1]
    edges, why = graph(src)
    found = cycles(edges)
    for component in found:
        print("cycle among:", " ".join(component))
        for a in component:
            for b in component:
                if b in edges[a]:
                    print(f"  {a} -> {b}: " + "; ".join(sorted(why[(a, b)])[:3]))
    if found:
        sys.exit(1)
    print("no cycles")


if __name__ == "__main__":
    main()
