#!/usr/bin/env python3
"""Checks the module boundaries of the tree (docs/architecture.md):

- a module includes only public headers (weft/<module>/...) of modules at or below its layer;
- private headers live under src/<module>/internal/ and are included only by that module, its
  tests, and the fuzz targets (which test parsers from inside);
- bindings and tools (src/capi, python/src, tools, bench, examples) include only public headers
  and their own (the benches also the tests' server launchers, tests/support/);
- public headers include only public headers.

Usage: check_layers.py [ROOT]. Prints each violation and exits 1 if there is any.
"""

import os
import re
import sys

LAYERS = ["core", "shm", "log", "net", "bus", "rpc", "graph", "mesh"]
RANK = {m: i for i, m in enumerate(LAYERS)}
TOP = {"capi", "python", "tools", "bench", "examples"}  # above every module
SOURCES = (".h", ".cc", ".c", ".hpp", ".cpp")
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)


def owner(rel):
    """(kind, module) of a file: kind is src, include, test, fuzz or top."""
    parts = rel.split("/")
    if parts[0] == "include" and len(parts) >= 3 and parts[1] == "weft":
        return ("include", parts[2]) if len(parts) > 3 else ("include", "capi")
    if parts[0] == "src" and len(parts) > 2:
        return ("top", "capi") if parts[1] == "capi" else ("src", parts[1])
    if parts[0] == "tests" and len(parts) > 2:
        if parts[1] == "fuzz":
            return ("fuzz", None)
        return ("test", parts[1])
    if parts[0] in ("python", "tools", "bench", "examples"):
        return ("top", parts[0])
    return (None, None)


def check(root):
    problems = []
    for base in ("include", "src", "tests", "python/src", "tools", "bench", "examples"):
        for dirpath, _dirs, files in os.walk(os.path.join(root, base)):
            for f in files:
                if not f.endswith(SOURCES):
                    continue
                path = os.path.join(dirpath, f)
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                kind, mod = owner(rel)
                if kind is None:
                    continue
                if kind == "src" and f.endswith(".h") and "/internal/" not in rel:
                    problems.append(f"{rel}: a private header outside src/{mod}/internal/")
                text = open(path, encoding="utf-8", errors="replace").read()
                for inc in INCLUDE.findall(text):
                    why = judge(root, rel, kind, mod, inc)
                    if why:
                        problems.append(f"{rel}: #include \"{inc}\": {why}")
    return problems


def judge(root, rel, kind, mod, inc):
    here = os.path.dirname(rel)
    if inc.startswith("weft/"):
        parts = inc.split("/")
        if len(parts) == 2:  # weft/weft.h, the C ABI
            return None if kind in ("top", "test", "fuzz") else "the C ABI is for bindings, not modules"
        target = parts[1]
        if target not in RANK:
            return f"no module '{target}'"
        if not os.path.exists(os.path.join(root, "include", inc)):
            return "no such public header"
        if kind in ("src", "include", "test") and mod in RANK and RANK[target] > RANK[mod]:
            return f"'{mod}' may not use '{target}', a higher layer"
        return None
    # Not a public header: it must be the file's own.
    if kind == "include":
        return "a public header may include only public headers"
    first = inc.split("/")[0]
    if kind == "src":
        # Relative to the file, inside its own module (internal/ or a sibling internal header).
        resolved = os.path.normpath(os.path.join(here, inc)).replace(os.sep, "/")
        if not resolved.startswith(f"src/{mod}/"):
            return "another module's private header"
        if not os.path.exists(os.path.join(root, resolved)):
            return "no such header in this module"
        return None
    if kind in ("test", "fuzz"):
        if os.path.exists(os.path.join(root, here, inc)):
            return None  # a helper beside the test
        if os.path.exists(os.path.join(root, "tests", inc)):
            return None  # a test helper of another suite
        if kind == "test" and mod not in RANK and os.path.exists(os.path.join(root, mod, inc)):
            return None  # tests of a tool (bench) include its own headers
        if "/internal/" in inc and os.path.exists(os.path.join(root, "src", inc)):
            if kind == "fuzz" or first == mod:
                return None
            return f"tests of '{mod}' may not include the internals of '{first}'"
        return "not a public header, a test helper, or this module's internals"
    # Bindings and tools: their own headers only (anywhere in their own folder), or generated ones.
    if inc.endswith(".pb.h"):
        return None  # protoc output in the build tree (bench's gRPC baseline)
    if rel.startswith("bench/") and inc.startswith("support/") and os.path.exists(os.path.join(root, "tests", inc)):
        return None  # the benches start real servers with the tests' launchers (tests/support/)
    top = rel.split("/")[0] if not rel.startswith(("src/", "python/src")) else "/".join(rel.split("/")[:2])
    for dirpath, _dirs, files in os.walk(os.path.join(root, top)):
        if os.path.basename(inc) in files and os.path.join(dirpath, os.path.basename(inc)).replace(os.sep, "/").endswith(inc):
            return None
    return "bindings and tools include only public headers and their own"


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..")
    problems = check(os.path.abspath(root))
    for p in problems:
        print(p)
    if problems:
        print(f"layer check: {len(problems)} violation(s)")
        return 1
    print("layer check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
