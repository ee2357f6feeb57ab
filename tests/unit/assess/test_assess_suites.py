"""Suite building: built-in sizes, deterministic sampling, custom YAML and clear errors."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from clearance.assess import corpus
from clearance.assess.suites import BUILTIN, SuiteError, build_suite, load_suite


def test_builtin_suites_and_smoke_size() -> None:
    smoke = load_suite("smoke", seed=0)
    assert len(smoke.items) <= 50
    assert {i.kind for i in smoke.items} == {"attack", "benign"}
    for name in BUILTIN:
        s = load_suite(name, seed=0)
        attacks = [i for i in s.items if i.kind == "attack"]
        assert len(attacks) == len(s.templates) * len(s.objectives)
        assert any(t.id == "direct" for t in s.templates)  # the baseline is always there
    cyber = load_suite("cyber", seed=0)
    assert all(o.category.startswith("cyber_") for o in cyber.objectives)


def test_sampling_is_deterministic_per_seed() -> None:
    a, b, c = load_suite("standard", seed=1), load_suite("standard", seed=1), load_suite("standard", seed=2)
    assert [i.id for i in a.items] == [i.id for i in b.items] and a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint


def test_objectives_spread_over_categories() -> None:
    s = load_suite("smoke", seed=5)
    assert len({o.category for o in s.objectives}) == len(s.objectives) == 8


def test_templates_fill_their_slot() -> None:
    s = load_suite("standard", seed=0)
    for item in s.items:
        assert "{objective" not in item.prompt
    t = corpus.Template(id="b64", family="x", text="decode: {objective}", transform="base64")
    assert t.render("do it") == "decode: " + base64.b64encode(b"do it").decode()


def test_custom_yaml_suite(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text("""
templates:
  baseline: false
  inline:
    - {id: t1, text: "Pretend. {objective}", family: custom}
objectives:
  ids: [cy-07]
  inline:
    - {id: o1, category: catA, text: "Do the thing"}
benign:
  inline:
    - {id: b1, category: benign_general, text: "Say hi"}
""")
    s = load_suite(str(path), seed=0)
    assert s.name == "mine"
    assert [i.id for i in s.items] == ["t1::cy-07", "t1::o1", "benign::b1"]
    assert s.items[1].prompt == "Pretend. Do the thing"


@pytest.mark.parametrize("spec,message", [
    ({"templates": {"families": {"nosuch": 1}}}, "unknown family"),
    ({"objectives": {"categories": ["nosuch"]}}, "unknown nosuch"),
    ({"objectives": {"ids": ["nosuch"]}}, "unknown id"),
    ({"templates": {"inline": [{"id": "t", "text": "no slot"}]}}, "slot"),
    ({"bogus": 1}, "unknown suite key"),
    ({"objectives": {"n": -1}}, "non-negative"),
])
def test_bad_specs_give_clear_errors(spec: dict, message: str) -> None:
    with pytest.raises(SuiteError, match=message):
        build_suite(spec)


def test_unknown_suite_name_or_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(SuiteError, match="built-in"):
        load_suite("nosuch")
    bad = tmp_path / "bad.yaml"
    bad.write_text("templates: [unclosed")
    with pytest.raises(SuiteError, match="not valid YAML"):
        load_suite(str(bad))


def test_heldout_suite_uses_only_handwritten_data() -> None:
    s = load_suite("heldout", seed=0)
    assert {t.family for t in s.templates} == {"baseline", "handwritten"}
    assert s.objectives and all(o.source == "clearance (handwritten)" for o in s.objectives)
    with pytest.raises(SuiteError, match="origin"):
        build_suite({"objectives": {"origin": "elsewhere"}})
