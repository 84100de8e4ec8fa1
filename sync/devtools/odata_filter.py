"""The simulator's ``$filter`` on ``/users``: the subset of OData that Microsoft Graph documents
for users, with Graph's rules on which parts need an advanced query.

Sources (learn.microsoft.com/graph): "Advanced query capabilities on Microsoft Entra ID
objects" (aad-advanced-queries: which operators and properties need ``ConsistencyLevel:
eventual`` + ``$count=true``, and the error answers), "Use the $filter query parameter"
(filter-query-parameter: ``any`` lambdas on collections), "List users" (user-list).

- Operators: ``eq``, ``ne``, ``in``, ``startsWith``, ``endsWith``, ``and``, ``or``, ``not``,
  parentheses, ``any()`` on the string collections (``businessPhones/any(p:startsWith(p,
  '+46'))``). Keywords and function names are case-insensitive (Graph takes ``NOT``, ``OR``,
  ``startswith``); string comparisons are case-insensitive, as in Entra.
- Advanced only: ``ne``, ``not``, ``endsWith`` (on mail, otherMails, userPrincipalName and
  proxyAddresses only), ``eq null``, and every operator on the properties Entra indexes only
  in its advanced store (mobilePhone, companyName, officeLocation, ...).
- Anything else (``gt``, ``contains``, ``all``, a property not in the table, an operator a
  property does not take, a collection compared without ``any``) is refused the way Graph
  refuses it: 400 ``Request_UnsupportedQuery``; text that does not parse: 400 ``BadRequest``.

Production code never evaluates a filter: only the simulator does (see docs/DECISIONS.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

ADVANCED_HINT = (
    "Try adding $count=true query parameter and ConsistencyLevel:eventual header. Refer to "
    "https://aka.ms/graph-docs/advanced-queries for more information"
)


@dataclass(frozen=True, slots=True)
class Prop:
    """How Graph filters one user property: its type, whether startsWith / endsWith work, and
    whether every operator on it needs the advanced query parameters."""

    kind: str = "string"  # "string" | "bool" | "collection"
    starts: bool = True
    ends: bool = False
    advanced: bool = False


_S, _B = Prop(), Prop(kind="bool", starts=False)
_ADV = Prop(advanced=True)
# aad-advanced-queries, "Support for filter by properties of Microsoft Entra ID objects" (user)
USER_PROPERTIES: Mapping[str, Prop] = {
    "accountEnabled": _B,
    "ageGroup": Prop(starts=False),
    "businessPhones": Prop(kind="collection"),
    "city": _S,
    "companyName": _ADV,
    "consentProvidedForMinor": Prop(starts=False),
    "country": _S,
    "creationType": Prop(starts=False),
    "department": _S,
    "displayName": _S,
    "employeeId": _S,
    "employeeType": _ADV,
    "givenName": _S,
    "id": Prop(starts=False),
    "imAddresses": Prop(kind="collection"),
    "jobTitle": _S,
    "mail": Prop(ends=True),
    "mailNickname": _S,
    "mobilePhone": _ADV,
    "officeLocation": _ADV,
    "onPremisesSamAccountName": _ADV,
    "onPremisesSyncEnabled": _B,
    "onPremisesUserPrincipalName": _S,
    "otherMails": Prop(kind="collection", ends=True),
    "postalCode": _ADV,
    "preferredLanguage": _ADV,
    "proxyAddresses": Prop(kind="collection", ends=True),
    "showInAddressList": Prop(kind="bool", starts=False, advanced=True),
    "state": _S,
    "streetAddress": _ADV,
    "surname": _S,
    "usageLocation": _S,
    "userPrincipalName": Prop(ends=True),
    "userType": Prop(starts=False),
}


@dataclass(frozen=True, slots=True)
class FilterRequest:
    """One ``/users`` request with a ``$filter``, as the simulator saw it (its request log)."""

    filter: str
    advanced: bool  # ConsistencyLevel: eventual and $count=true were both sent
    consistency_level: str | None


class FilterRefused(Exception):
    """Graph's answer to a filter it does not take: HTTP status, error code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def unsupported_property(name: str) -> FilterRefused:
    return FilterRefused(
        400,
        "Request_UnsupportedQuery",
        f"Unsupported or invalid query filter clause specified for property '{name}' of "
        "resource 'User'.",
    )


def needs_advanced(operator: str) -> FilterRefused:
    return FilterRefused(
        400,
        "Request_UnsupportedQuery",
        f"Operator '{operator}' is not supported because the required parameters might be "
        f"missing. {ADVANCED_HINT}",
    )


# --- syntax tree ---------------------------------------------------------------------------

Value = str | bool | float | None


@dataclass(frozen=True, slots=True)
class Compare:
    prop: str  # a property name, or the lambda variable
    op: str  # "eq" | "ne"
    value: Value


@dataclass(frozen=True, slots=True)
class In:
    prop: str
    values: tuple[Value, ...]


@dataclass(frozen=True, slots=True)
class Func:
    name: str  # "startsWith" | "endsWith"
    prop: str
    prefix: str


@dataclass(frozen=True, slots=True)
class Any_:
    collection: str
    var: str
    body: Node


@dataclass(frozen=True, slots=True)
class Not:
    body: Node


@dataclass(frozen=True, slots=True)
class Bool:
    op: str  # "and" | "or"
    left: Node
    right: Node


Node = Compare | In | Func | Any_ | Not | Bool


# --- tokens and parser ---------------------------------------------------------------------

_TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+(?:\.\d+)?)"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_]*(?:/[A-Za-z_][A-Za-z0-9_]*)*)|(?P<punct>[(),:]))"
)
_COMPARE_OPS = {"eq", "ne", "gt", "ge", "lt", "le", "has"}


@dataclass(frozen=True, slots=True)
class _Tok:
    kind: str  # "str" | "num" | "name" | "punct" | "end"
    text: str
    pos: int


def _tokens(text: str) -> list[_Tok]:
    out: list[_Tok] = []
    pos = 0
    while pos < len(text):
        if not text[pos:].strip():
            break
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise _syntax(text, pos)
        kind = m.lastgroup or "punct"
        out.append(_Tok(kind, m.group(kind), m.start(kind)))
        pos = m.end()
    out.append(_Tok("end", "", len(text)))
    return out


def _syntax(text: str, pos: int) -> FilterRefused:
    return FilterRefused(
        400, "BadRequest", f"Invalid filter clause: Syntax error at position {pos} in '{text}'."
    )


class _Parser:
    """or_expr := and_expr (or and_expr)*; and_expr := unary (and unary)*;
    unary := not unary | primary; primary := ( or_expr ) | func | lambda | comparison."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = _tokens(text)
        self.i = 0
        self.vars: list[str] = []

    def peek(self) -> _Tok:
        return self.toks[self.i]

    def next(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def keyword(self, word: str) -> bool:
        tok = self.peek()
        if tok.kind == "name" and tok.text.lower() == word:
            self.i += 1
            return True
        return False

    def expect(self, punct: str) -> None:
        tok = self.next()
        if tok.kind != "punct" or tok.text != punct:
            raise _syntax(self.text, tok.pos)

    def parse(self) -> Node:
        node = self.or_expr()
        if self.peek().kind != "end":
            raise _syntax(self.text, self.peek().pos)
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while self.keyword("or"):
            node = Bool("or", node, self.and_expr())
        return node

    def and_expr(self) -> Node:
        node = self.unary()
        while self.keyword("and"):
            node = Bool("and", node, self.unary())
        return node

    def unary(self) -> Node:
        if self.keyword("not"):
            return Not(self.unary())
        return self.primary()

    def primary(self) -> Node:
        tok = self.peek()
        if tok.kind == "punct" and tok.text == "(":
            self.next()
            node = self.or_expr()
            self.expect(")")
            return node
        if tok.kind != "name":
            raise _syntax(self.text, tok.pos)
        self.next()
        after = self.peek()
        if after.kind == "punct" and after.text == "(":
            return self.function(tok)
        return self.comparison(tok)

    def function(self, tok: _Tok) -> Node:
        path = tok.text.split("/")
        if len(path) == 2 and path[1].lower() in ("any", "all"):
            if path[1].lower() == "all":
                raise FilterRefused(400, "Request_UnsupportedQuery", "Unsupported Query.")
            return self.lambda_(path[0])
        name = {"startswith": "startsWith", "endswith": "endsWith"}.get(tok.text.lower())
        if name is None:  # contains, substringof, tolower...: Graph has none on users
            raise FilterRefused(400, "Request_UnsupportedQuery", "Unsupported Query.")
        self.expect("(")
        prop = self.next()
        if prop.kind != "name":
            raise _syntax(self.text, prop.pos)
        self.expect(",")
        prefix = self.next()
        if prefix.kind != "str":
            raise _syntax(self.text, prefix.pos)
        self.expect(")")
        return Func(name, prop.text, _unquote(prefix.text))

    def lambda_(self, collection: str) -> Node:
        self.expect("(")
        var = self.next()
        if var.kind != "name" or "/" in var.text:
            raise _syntax(self.text, var.pos)
        self.expect(":")
        self.vars.append(var.text)
        body = self.or_expr()
        self.vars.pop()
        self.expect(")")
        return Any_(collection, var.text, body)

    def comparison(self, tok: _Tok) -> Node:
        op = self.next()
        word = op.text.lower() if op.kind == "name" else ""
        if word == "in":
            self.expect("(")
            values = [self.value()]
            while self.peek().text == ",":
                self.next()
                values.append(self.value())
            self.expect(")")
            return In(tok.text, tuple(values))
        if word not in _COMPARE_OPS:
            raise _syntax(self.text, op.pos)
        if word not in ("eq", "ne"):
            raise FilterRefused(400, "Request_UnsupportedQuery", "Unsupported Query.")
        return Compare(tok.text, word, self.value())

    def value(self) -> Value:
        tok = self.next()
        if tok.kind == "str":
            return _unquote(tok.text)
        if tok.kind == "num":
            return float(tok.text)
        if tok.kind == "name" and tok.text.lower() in ("true", "false", "null"):
            return {"true": True, "false": False, "null": None}[tok.text.lower()]
        raise _syntax(self.text, tok.pos)


def _unquote(literal: str) -> str:
    return literal[1:-1].replace("''", "'")


# --- checks (Graph's rules) and evaluation -------------------------------------------------


def advanced_needs(node: Node, variable: Mapping[str, str] | None = None) -> list[str]:
    """What in ``node`` needs the advanced query parameters (operator names or ``property:``
    names), in the order met. Raises FilterRefused for what Graph never takes on users."""
    var = dict(variable or {})
    out: list[str] = []

    def prop_of(name: str, *, element: bool) -> tuple[str, Prop]:
        if name in var:
            coll = var[name]
            return coll, USER_PROPERTIES[coll]
        p = USER_PROPERTIES.get(name)
        if p is None or (p.kind == "collection") != element:
            raise unsupported_property(name)
        return name, p

    def walk(n: Node) -> None:
        if isinstance(n, Bool):
            walk(n.left)
            walk(n.right)
        elif isinstance(n, Not):
            out.append("not")
            walk(n.body)
        elif isinstance(n, Any_):
            p = USER_PROPERTIES.get(n.collection)
            if p is None or p.kind != "collection":
                raise unsupported_property(n.collection)
            var[n.var] = n.collection
            walk(n.body)
            del var[n.var]
        else:
            name, p = prop_of(n.prop, element=n.prop in var)
            if isinstance(n, Func):
                allowed = p.ends if n.name == "endsWith" else p.starts
                if not allowed:
                    raise unsupported_property(name)
                if n.name == "endsWith":
                    out.append("endsWith")
            elif isinstance(n, Compare):
                if n.op == "ne":
                    out.append("ne")
                if n.value is None:
                    out.append(f"property:{name}")
                if p.kind == "bool" and not isinstance(n.value, bool | None):
                    raise unsupported_property(name)
            if p.advanced:
                out.append(f"property:{name}")

    walk(node)
    return out


def parse_filter(text: str, *, advanced: bool) -> Callable[[Mapping[str, Any]], bool]:
    """The filter as a predicate on a stored user. ``advanced``: the request carried
    ``ConsistencyLevel: eventual`` and ``$count=true``. Raises FilterRefused with Graph's
    answer when Graph would refuse the filter."""
    node = _Parser(text).parse()
    needs = advanced_needs(node)
    if needs and not advanced:
        first = needs[0]
        if first.startswith("property:"):
            raise unsupported_property(first.split(":", 1)[1])
        raise needs_advanced(first)
    return lambda user: _matches(node, user, {})


def _fold(v: Any) -> Any:
    return v.casefold() if isinstance(v, str) else v


def _matches(node: Node, user: Mapping[str, Any], env: Mapping[str, Any]) -> bool:
    def value_of(name: str) -> Any:
        return env[name] if name in env else user.get(name)

    if isinstance(node, Bool):
        left = _matches(node.left, user, env)
        if node.op == "and":
            return left and _matches(node.right, user, env)
        return left or _matches(node.right, user, env)
    if isinstance(node, Not):
        return not _matches(node.body, user, env)
    if isinstance(node, Any_):
        items = user.get(node.collection) or []
        return any(_matches(node.body, user, {**env, node.var: item}) for item in items)
    got = _fold(value_of(node.prop))
    if isinstance(node, Compare):
        same = got == _fold(node.value)
        return same if node.op == "eq" else not same
    if isinstance(node, In):
        return got in {_fold(v) for v in node.values}
    if not isinstance(got, str):
        return False
    want = node.prefix.casefold()
    return got.startswith(want) if node.name == "startsWith" else got.endswith(want)
