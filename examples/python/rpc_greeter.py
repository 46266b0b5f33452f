"""A greeter resource with read methods, served to another process.

    python3 examples/python/rpc_greeter.py
"""

import os

import weft
from _serve import serve_in_child, stop


@weft.contract(namespace="demo.greeter", version="0.1.0")
class Greeter:
    @weft.read
    def greet(self, name: str) -> str: ...

    @weft.read
    def language(self) -> str: ...


class GreeterImpl:
    def __init__(self, lang: str = "en"):
        self._lang = lang
        self._templates = {"en": "Hello, {}!", "zh": "你好, {}!"}

    def greet(self, name: str) -> str:
        return self._templates.get(self._lang, "Hi, {}!").format(name)

    def language(self) -> str:
        return self._lang


pid, address = serve_in_child(f"greeter-{os.getpid()}",
                              lambda s: s.register(Greeter, GreeterImpl("zh"), name="greeter"))
try:
    with weft.connect(Greeter, name="greeter", address=address, timeout=10) as g:
        print(g.greet("World"), g.language())
        assert g.greet("World") == "你好, World!"
        assert g.language() == "zh"
finally:
    stop(pid)
print("greeter example ok")
