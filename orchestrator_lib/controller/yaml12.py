"""A PyYAML SafeLoader with YAML 1.2 core-schema scalars and bounded documents.

Why: PyYAML implements YAML 1.1, where `port: 026` is octal (22), `1:10` is sexagesimal (70) and
`country: no` is false. YAML 1.2's core schema (what ruamel.yaml and yamlcore load) makes those
the decimal 26 and the strings '1:10' and 'no': only true/false, null/~, decimal, 0o/0x integers
and plain floats (with .inf/.nan) are typed. The resolvers below are that schema's regexes.

Bounds, so a hostile or broken file fails in one line instead of hanging or crashing:
MAX_DEPTH nested collections (deeper is a RecursionError in PyYAML's composer), and MAX_NODES
values after alias expansion (a 2.5 KB "billion laughs" ran 67 s into MemoryError), checked by the
code that builds the data (Yaml12Loader.count_node).
"""
from __future__ import annotations

import re

import yaml

MAX_DEPTH = 64
MAX_NODES = 100_000


class DocumentTooLarge(yaml.MarkedYAMLError):
    """Nested too deep or expanding to too many values: refused with the line it happened at."""


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 core-schema implicit types and depth/size bounds."""

    yaml_implicit_resolvers: dict = {}

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: object) -> yaml.Node:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise DocumentTooLarge(None, None, f"nested deeper than {MAX_DEPTH} levels", self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def count_node(self, node: yaml.Node) -> None:
        """Call once per value built (aliases count each time they are expanded)."""
        self._nodes += 1 + (len(node.value) if isinstance(node, yaml.MappingNode) else 0)
        if self._nodes > MAX_NODES:
            raise DocumentTooLarge(None, None, f"expands to more than {MAX_NODES} values (aliases repeated "
                                   "too often)", node.start_mark)

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        text = self.construct_scalar(node)
        if text.startswith("0o"):
            return int(text[2:], 8)
        if text.startswith("0x"):
            return int(text[2:], 16)
        return int(text, 10)


Yaml12Loader.add_constructor("tag:yaml.org,2002:int", Yaml12Loader.construct_yaml_int)
for _tag, _pattern, _first in (
        ("bool", r"true|True|TRUE|false|False|FALSE", "tTfF"),
        ("int", r"[-+]?[0-9]+|0o[0-7]+|0x[0-9a-fA-F]+", "-+0123456789"),
        ("float", r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)"
                  r"|\.(?:nan|NaN|NAN)", "-+0123456789."),
        ("null", r"~|null|Null|NULL|", ["~", "n", "N", ""]),
        ("merge", r"<<", "<")):
    Yaml12Loader.add_implicit_resolver(f"tag:yaml.org,2002:{_tag}", re.compile(rf"^(?:{_pattern})$"), list(_first))
