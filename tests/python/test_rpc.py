"""Contracts from Python: canonical text, hash stability across languages, mismatch details."""

import hashlib
from typing import Iterator

import numpy as np
import pytest

import weft


@weft.contract(namespace="demo.counter", version="0.1.0")
class Counter:
    def increment(self, amount: int) -> int: ...

    @weft.read
    def value(self) -> int: ...

    def reset(self) -> int: ...


def test_canonical_text_and_hash_match_the_cpp_contract():
    c = Counter.__weft_contract__
    assert c.canonical() == (
        "weft-contract 1\n"
        "namespace demo.counter\n"
        "name Counter\n"
        "version 0.1.0\n"
        "method increment write i64 -> i64\n"
        "method reset write -> i64\n"
        "method value read -> i64\n")
    # The value tests/rpc/contract_test.cc expects from C++, and plain BLAKE2b-128.
    assert c.hash == "2c2859863138efe6c98aa14daa210b3b"
    assert hashlib.blake2b(c.canonical().encode(), digest_size=16).hexdigest() == c.hash


def test_codecs_come_from_annotations():
    class Matrix:
        __weft_transferable__ = "demo.Matrix"

    @weft.contract(namespace="demo.mesh", version="2")
    class Mesh:
        @weft.read
        def points(self, lo: int, hi: int) -> np.ndarray: ...

        def put(self, data: bytes, scale: float, flag: bool, note: str) -> None: ...

        def store(self, m: Matrix, anything) -> dict: ...

        @weft.read
        def chunks(self, n: int) -> Iterator[bytes]: ...

    c = Mesh.__weft_contract__
    assert c.method("points").line() == "method points read i64 i64 -> ndarray"
    assert c.method("put").line() == "method put write bytes f64 bool str -> none"
    assert c.method("store").line() == "method store write demo.Matrix pickle -> pickle"
    assert c.method("chunks").line() == "method chunks read i64 -> stream bytes"


def test_mismatch_says_what_differs():
    @weft.contract(namespace="demo.counter", version="0.2.0", name="Counter")
    class CounterV2:
        def increment(self, amount: float) -> int: ...

        def value(self) -> int: ...

        @weft.read
        def describe(self) -> str: ...

    weft.check_contract(Counter, Counter)
    with pytest.raises(weft.ContractMismatch) as e:
        weft.check_contract(Counter, CounterV2)
    msg = str(e.value)
    assert "version 0.1.0 on the server, 0.2.0 on the client" in msg
    assert "method 'describe' only on the client" in msg
    assert "method 'reset' only on the server" in msg
    assert "method 'increment' takes (i64) on the server, (f64) on the client" in msg
    assert "method 'value' is read on the server, write on the client" in msg


def test_bad_contracts_fail_at_definition():
    with pytest.raises(weft.InvalidArgument):
        @weft.contract(namespace="", version="1")
        class Bad:
            def m(self) -> int: ...
    with pytest.raises(weft.Corrupt):
        weft._native._contract_hash("weft-contract 1\nnamespace a\nname B\nversion 1\nmethod z read -> i64\nmethod a read -> i64\n")
