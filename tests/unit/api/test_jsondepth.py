"""How deeply a JSON body nests, checked without recursion."""

import orjson

from clearance.api.jsondepth import depth_exceeds, too_deep


def test_depth_is_counted_by_containers():
    assert not depth_exceeds({}, 1) and depth_exceeds({"a": {}}, 1)
    assert not depth_exceeds([[["x"]]], 3) and depth_exceeds([[["x"]]], 2)
    assert not depth_exceeds("scalar", 1)


def test_deep_bodies_are_found_wherever_they_nest():
    for raw in (b'{"messages":[{"name":' + b"[" * 300 + b"]" * 300 + b"}]}",
                b'{"tools":' + b'{"a":' * 100 + b"1" + b"}" * 100 + b"}"):
        assert too_deep(raw, orjson.loads(raw), 64)


def test_many_brackets_but_shallow_is_fine():
    raw = orjson.dumps({"messages": [{"role": "user", "content": "[[[[" * 50}] * 100})
    assert not too_deep(raw, orjson.loads(raw), 8)
