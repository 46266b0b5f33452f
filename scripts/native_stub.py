#!/usr/bin/env python3
"""Writes the type stub of weft._native (python/weft/_native.pyi) from the signatures pybind11
puts in its docstrings. `make test` (tests/python/test_stubs.py) checks the committed stub
against a fresh one, so the stub cannot drift from the module.

Usage: native_stub.py [--check]   (PYTHONPATH must find weft and the built weft._native)
"""

import ast
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STUB = os.path.join(HERE, "..", "python", "weft", "_native.pyi")
SIG = re.compile(r"^(?:\d+\. )?(\w+)\((.*)\) -> (.+)$")
KEEP_DUNDERS = {"__init__", "__enter__", "__exit__", "__iter__", "__next__", "__len__", "__buffer__"}
SIMPLE = {"int", "float", "str", "bytes", "bool", "None", "dict", "list", "tuple", "Any"}


def py_type(t: str) -> str:
    t = t.strip()
    t = re.sub(r"\bweft\._native\.", "", t)
    t = re.sub(r"\b(handle|object|buffer|module_|capsule|function|iterable|iterator|args|kwargs)\b", "Any", t)
    t = re.sub(r"\bsequence\b", "Sequence[Any]", t)
    names = set(re.findall(r"[A-Za-z_][\w]*", t))
    allowed = SIMPLE | {"Optional", "List", "Dict", "Tuple", "Sequence", "Callable", "Union"} | CLASSES
    return t if names <= allowed else "Any"


def default(d: str) -> str:
    d = d.strip()
    try:
        ast.literal_eval(d)
        return d
    except Exception:
        return "..."


def split_params(s: str):
    out, depth, cur = [], 0, ""
    for ch in s:
        if ch in "[(":
            depth += 1
        elif ch in "])":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur)
    return [p.strip() for p in out]


def params(s: str, method: bool) -> str:
    parts = []
    for i, p in enumerate(split_params(s)):
        if method and i == 0 and p.startswith("self"):
            parts.append("self")
            continue
        if p.startswith("*"):
            parts.append(p.split(":")[0])
            continue
        name, _, rest = p.partition(":")
        typ, _, dflt = rest.partition("=")
        text = f"{name.strip()}: {py_type(typ)}"
        if dflt:
            text += f" = {default(dflt)}"
        parts.append(text)
    return ", ".join(parts)


def signatures(name: str, doc: str, method: bool):
    sigs = []
    for line in (doc or "").splitlines():
        m = SIG.match(line.strip())
        if not m or m.group(1) != name or "_weft_misuse" in line:
            continue
        sigs.append(f"def {name}({params(m.group(2), method)}) -> {py_type(m.group(3))}: ...")
    return sigs


def summary(doc: str) -> str:
    lines = [l for l in (doc or "").splitlines() if l.strip() and not SIG.match(l.strip())
             and l.strip() != "Overloaded function."]
    return lines[0].strip() if lines else ""


def generate(native) -> str:
    global CLASSES
    CLASSES = {n for n in dir(native) if isinstance(getattr(native, n), type)}
    out = ['"""Type stub of weft._native, written by scripts/native_stub.py from the module itself."""', "",
           "from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union", ""]
    for name in sorted(dir(native)):
        if name.startswith("__"):
            continue
        obj = getattr(native, name)
        if isinstance(obj, type):
            out.append(f"class {name}:")
            doc = summary(obj.__doc__)
            if doc:
                out.append(f"    {repr(doc)}")
            body = []
            for attr, value in sorted(vars(obj).items()):
                if attr.startswith("__") and attr not in KEEP_DUNDERS:
                    continue
                if isinstance(value, property):
                    body += ["    @property", f"    def {attr}(self) -> Any: ..."]
                elif isinstance(value, staticmethod):
                    sigs = signatures(attr, value.__func__.__doc__, False)
                    for s in sigs or [f"def {attr}(*args: Any, **kwargs: Any) -> Any: ..."]:
                        body += ["    @staticmethod", f"    {s}"]
                elif callable(value):
                    sigs = signatures(attr, getattr(value, "__doc__", ""), True)
                    if len(sigs) > 1:
                        sigs = sigs[:1]  # overloads beyond the first are misuse fallbacks
                    body += [f"    {s}" for s in sigs or [f"def {attr}(self, *args: Any, **kwargs: Any) -> Any: ..."]]
            out += body or ["    ..."]
            out.append("")
        elif callable(obj):
            sigs = signatures(name, obj.__doc__, False)
            out += sigs or [f"def {name}(*args: Any, **kwargs: Any) -> Any: ..."]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def main():
    import weft._native as native
    text = generate(native)
    if "--check" in sys.argv:
        current = open(STUB).read() if os.path.exists(STUB) else ""
        if current != text:
            print("python/weft/_native.pyi is stale: run scripts/native_stub.py")
            return 1
        print("stub: ok")
        return 0
    with open(STUB, "w") as f:
        f.write(text)
    print(f"wrote {os.path.relpath(STUB)}")
    return 0


CLASSES = set()

if __name__ == "__main__":
    sys.exit(main())
