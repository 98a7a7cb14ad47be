"""Discovery: which hosts of an inventory a command targets (-I -W -C -A -S) and how many it must find."""
from .compound import parse_compound, tokenize
from .contract import CountContract
from .filters import Filter, select, unknown_facts, unknown_identities, unknown_words
from .terms import FactTerm, NameTerm, compare_values, compare_versions, parse_agent, parse_class, parse_fact, parse_identity

__all__ = [
    "CountContract",
    "FactTerm",
    "Filter",
    "NameTerm",
    "compare_values",
    "compare_versions",
    "parse_agent",
    "parse_class",
    "parse_compound",
    "parse_fact",
    "parse_identity",
    "select",
    "tokenize",
    "unknown_facts",
    "unknown_identities",
    "unknown_words",
]
