"""Issue 12: the estate's YAML is read with YAML 1.2 scalars, bounded alias expansion and depth,
and a one-line error (never a traceback) for NUL bytes; fuzzed."""
from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest
from hypothesis import given, strategies as st

sys.path.insert(0, str(Path(__file__).parent))
from fuzzing import FUZZ  # noqa: E402

from orchestrator_lib.controller.errors import InventoryError  # noqa: E402
from orchestrator_lib.controller.inventory import load_inventory  # noqa: E402


def load(tmp_path: Path, text: str):
    path = tmp_path / "estate.yaml"
    path.write_text(text, encoding="utf-8")
    return load_inventory(path)


def error(tmp_path: Path, text: str) -> str:
    with pytest.raises(InventoryError) as exc:
        load(tmp_path, text)
    message = str(exc.value)
    assert "\n" not in message and "estate.yaml:" in message
    return message


def test_yaml_1_2_scalars_no_octal_sexagesimal_or_yes_no_booleans(tmp_path):
    inv = load(tmp_path, "hosts:\n  web1: {address: 10.0.0.1, port: 026, "
                         "facts: {country: no, t: 1:10, on: off, y: Yes, hex: 0x1F, oct: 0o17, f: 1.50}}\n")
    host = inv.hosts["web1"]
    assert host.port == 26  # YAML 1.1: 22
    assert host.facts == {"country": "no", "t": "1:10", "on": "off", "y": "Yes", "hex": "0x1F", "oct": "0o17",
                          "f": "1.50"}


def test_an_alias_bomb_is_refused_in_one_line_and_fast(tmp_path):
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join(['*' + prev] * 9)}]")
    t0 = time.monotonic()
    message = error(tmp_path, "\n".join(lines) + "\nhosts: {}\n")
    assert time.monotonic() - t0 < 2
    assert "expands to more than" in message


@pytest.mark.parametrize("text, line", [("hosts:\n  web1: {address: 10.0.0.1}\x00\n", 2),
                                        ("hosts:\n\n  web1: {address: \x07}\n", 3)])
def test_a_nul_or_control_character_is_a_one_line_error_with_its_line(tmp_path, text, line):
    assert f"estate.yaml:{line}: invalid YAML: control character" in error(tmp_path, text)


@pytest.mark.parametrize("text", ["hosts: " + "[" * 5000 + "]" * 5000, "hosts: " + "{a: " * 3000 + "1" + "}" * 3000])
def test_deep_nesting_is_a_one_line_error(tmp_path, text):
    assert "nested deeper than" in error(tmp_path, text + "\n")


_scalar = st.sampled_from(["026", "1:10", "no", "~", "0x1F", ".inf", "-.nan", "'x'", "\"\\x00\"", "*a", "&a x",
                           "!!python/object:os.system", "10.0.0.1", "web1", "[", "{", "}", "]", "- ", ": ", "<<: *a",
                           "\t", "\x00", "\x85", "\ufeff", "é", "9" * 40])
_yaml = st.recursive(
    _scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.dictionaries(st.sampled_from(["hosts", "web1", "address", "port", "facts", "groups", "defaults", "x"]),
                        inner, max_size=4).map(lambda d: "{" + ", ".join(f"{k}: {v}" for k, v in d.items()) + "}")),
    max_leaves=20)


@FUZZ
@given(st.one_of(_yaml.map(lambda body: "hosts: " + body + "\n"),
                 st.lists(st.tuples(st.integers(0, 6), st.sampled_from(["hosts:", "web1:", "address: 10.0.0.1",
                                                                        "port: 026", "- a", "&x y", "*x", "<<: *x",
                                                                        "{", "[", "\x00", "'"])),
                          max_size=12).map(lambda rows: "\n".join(" " * i + t for i, t in rows))))
def test_fuzz_inventory_yaml_loads_or_fails_in_one_line(tmp_path_factory, text):
    path = tmp_path_factory.getbasetemp() / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    t0 = time.monotonic()
    try:
        load_inventory(path)
    except InventoryError as e:
        assert "\n" not in str(e) and "fuzz.yaml" in str(e)
    assert time.monotonic() - t0 < 2
