"""The -S compound language: `cluster=alfa and (hagroup=a or hagroup=b) and not web3`.

Hand-written tokenizer and recursive-descent parser, so every error can point at a column:

    expr     := and_expr ('or' and_expr)*        -- also ||
    and_expr := not_expr ('and' not_expr)*       -- also &&
    not_expr := 'not' not_expr | atom            -- also !
    atom     := '(' expr ')' | TERM

A TERM with an operator (`hagroup=a`, `load<2`, `os=~/deb/`) is a fact term (see filters.parse_fact),
`/re/` matches the identity, and a bare word is true when it is the host's name or one of its classes
(MCollective reads it as a class or an identity). A word that is neither anywhere in the estate is a
typo (filters.unknown_words): under `not` it would silently select more hosts.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from ..errors import FilterError
from .terms import FactTerm, NameTerm, parse_fact, parse_identity

if TYPE_CHECKING:  # annotations only: the NATS agent's bundle ships the matchers without the inventory
    from ..inventory import Host

_MAX_DEPTH = 100  # nesting of ( and not; deeper is a mistake, and would hit Python's recursion limit
_KEYWORDS = {"and": "and", "or": "or", "not": "not", "&&": "and", "||": "or", "!": "not"}
_SYMBOLS = ("&&", "||")


def _shown(text: str) -> str:
    """The expression as quoted in errors: one line, same columns (each newline or tab -> a space)."""
    return "".join(" " if char in "\n\r\t\v\f" else char for char in text)


# --- AST -------------------------------------------------------------------------------------


class Node(Protocol):
    def evaluate(self, host: Host) -> bool: ...

    def fact_names(self) -> list[str]: ...

    def words(self) -> list[str]: ...


@dataclass(frozen=True)
class FactAtom:
    term: FactTerm

    def evaluate(self, host: Host) -> bool:
        return self.term.matches(host)

    def fact_names(self) -> list[str]:
        return [self.term.name]

    def words(self) -> list[str]:
        return []


@dataclass(frozen=True)
class IdentityAtom:
    term: NameTerm

    def evaluate(self, host: Host) -> bool:
        return self.term.matches(host.name)

    def fact_names(self) -> list[str]:
        return []

    def words(self) -> list[str]:
        return []


@dataclass(frozen=True)
class WordAtom:
    """A bare word: the host's name or one of its classes."""

    word: str

    def evaluate(self, host: Host) -> bool:
        return host.name == self.word or self.word in host.classes

    def fact_names(self) -> list[str]:
        return []

    def words(self) -> list[str]:
        return [self.word]


@dataclass(frozen=True)
class Not:
    child: Node

    def evaluate(self, host: Host) -> bool:
        return not self.child.evaluate(host)

    def fact_names(self) -> list[str]:
        return self.child.fact_names()

    def words(self) -> list[str]:
        return self.child.words()


@dataclass(frozen=True)
class And:
    parts: tuple[Node, ...]

    def evaluate(self, host: Host) -> bool:
        return all(part.evaluate(host) for part in self.parts)

    def fact_names(self) -> list[str]:
        return [name for part in self.parts for name in part.fact_names()]

    def words(self) -> list[str]:
        return [word for part in self.parts for word in part.words()]


@dataclass(frozen=True)
class Or:
    parts: tuple[Node, ...]

    def evaluate(self, host: Host) -> bool:
        return any(part.evaluate(host) for part in self.parts)

    def fact_names(self) -> list[str]:
        return [name for part in self.parts for name in part.fact_names()]

    def words(self) -> list[str]:
        return [word for part in self.parts for word in part.words()]


# --- tokenizer -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # "(", ")", "and", "or", "not", "term" or "end"
    text: str
    column: int  # 1-based, as editors count


def _regex_end(text: str, start: int) -> int:
    """Index of the '/' closing the regex opened at `start` (backslash escapes skipped), or -1."""
    i = start + 1
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == "/":
            return i
        i += 1
    return -1


def tokenize(text: str) -> list[Token]:
    """Split an expression into tokens; a regex (`/a b(c)/`, `os=~/x y/`) stays one token."""
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        char, column = text[i], i + 1
        if char.isspace():
            i += 1
        elif char in "()":
            tokens.append(Token(char, char, column))
            i += 1
        elif text[i : i + 2] in _SYMBOLS:
            tokens.append(Token(_KEYWORDS[text[i : i + 2]], text[i : i + 2], column))
            i += 2
        elif char == "!" and text[i + 1 : i + 2] != "=":
            tokens.append(Token("not", char, column))
            i += 1
        else:
            end = _word_end(text, i)
            word = text[i:end]
            tokens.append(Token(_KEYWORDS.get(word, "term"), word, column))
            i = end
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _word_end(text: str, start: int) -> int:
    i = start
    while i < len(text) and not text[i].isspace() and text[i] not in "()" and text[i : i + 2] not in _SYMBOLS:
        # A regex starts a term (`/web/`) or follows an operator (`os=~/deb/`, `os=/deb/`).
        if text[i] == "/" and (i == start or text[i - 1] in "=~"):
            close = _regex_end(text, i)
            if close < 0:
                raise FilterError(f'-S "{_shown(text)}": unterminated regex at column {i + 1}')
            i = close + 1
        else:
            i += 1
    return i


# --- parser ----------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = _shown(text)
        self.tokens = tokenize(text)
        self.pos = 0
        self.depth = 0

    def parse(self) -> Node:
        node = self._or()
        if self._peek().kind != "end":
            raise self._error("expected 'and', 'or' or the end", self._peek())
        return node

    def _or(self) -> Node:
        parts = [self._and()]
        while self._peek().kind == "or":
            self.pos += 1
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def _and(self) -> Node:
        parts = [self._not()]
        while self._peek().kind == "and":
            self.pos += 1
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def _not(self) -> Node:
        if self._peek().kind == "not":
            self._descend(self._peek())
            self.pos += 1
            node = Not(self._not())
            self.depth -= 1
            return node
        return self._atom()

    def _atom(self) -> Node:
        token = self._peek()
        self.pos += 1
        if token.kind == "(":
            self._descend(token)
            node = self._or()
            if self._peek().kind != ")":
                raise self._error("expected ')'", self._peek())
            self.pos += 1
            self.depth -= 1
            return node
        if token.kind == "term":
            return self._term(token)
        raise self._error("expected a term, 'not' or '('", token)

    def _term(self, token: Token) -> Node:
        word = token.text
        try:
            if any(op in word for op in "=<>"):
                return FactAtom(parse_fact(word))
            if word.startswith("/"):
                return IdentityAtom(parse_identity(word))
        except FilterError as exc:
            raise FilterError(f'-S "{self.text}": column {token.column}: {exc}') from None
        return WordAtom(word)

    def _peek(self) -> Token:
        return self.tokens[self.pos]

    def _descend(self, token: Token) -> None:
        self.depth += 1
        if self.depth > _MAX_DEPTH:
            raise self._error(f"nested deeper than {_MAX_DEPTH} levels", token)

    def _error(self, message: str, token: Token) -> FilterError:
        found = "the end" if token.kind == "end" else f"'{token.text}'"
        return FilterError(f'-S "{self.text}": {message} at column {token.column}, found {found}')


def parse_compound(text: str) -> Node:
    """Parse a -S expression into an AST whose `evaluate(host)` says whether the host matches."""
    return _Parser(text).parse()
