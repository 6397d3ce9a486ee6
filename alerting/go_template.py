"""A checked subset of Go's ``text/template``: what Alertmanager's templates are made of.

Operators bring ``slack_configs`` from Alertmanager, whose ``title`` and ``text`` are
Go templates. This module parses that language (actions, pipelines, ``if`` / ``else
if`` / ``else``, ``range``, ``with``, ``template``, comments, ``{{-`` / ``-}}``
trimming) and evaluates it over plain Python data. Parsing also *type-checks* the
template against a schema of the data (``Schema``), every branch included, so a
misspelt field or label is refused when the routing file is loaded, not discovered
as an empty Slack message at 3 a.m. Variables (``$x :=``), ``define`` and
``block`` are refused with the reason: none of Alertmanager's shipped Slack templates
need them.

Values follow Go: a missing map key is empty (Alertmanager's ``missingkey=zero``),
an empty string, zero, ``false`` or an empty collection is false in ``if``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence, Sized
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

MAX_OUTPUT = 65_536
"""Characters one evaluation may produce: a range over a large group stops there."""


class TemplateError(ValueError):
    """The template is not valid, or names something the data does not have."""


class Schema(Protocol):
    """The shape of the data, used to check a template before it ever runs."""

    def field(self, kind: str, name: str) -> str:
        """The kind of ``name`` on a value of ``kind``; ``TemplateError`` if there is none."""

    def method(self, kind: str, name: str, args: Sequence[str]) -> str:
        """The kind a method call returns; ``TemplateError`` if it does not exist or takes other args."""

    def element(self, kind: str) -> str:
        """The kind of the items ``range`` yields from ``kind``; ``TemplateError`` if not iterable."""


# --- lexing -------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
        (?P<string>"(?:[^"\\]|\\.)*")
      | (?P<raw>`[^`]*`)
      | (?P<number>-?\d+)
      | (?P<field>\$?(?:\.\w+)+|\.|\$\w*)
      | (?P<word>[A-Za-z_]\w*)
      | (?P<punct>[|()])
      | (?P<assign>:?=)
    )""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str
    text: str


def _split(source: str) -> list[str | tuple[str, bool, bool]]:
    """Text pieces and actions ``(inside, trim_before, trim_after)``, in order."""
    pieces: list[str | tuple[str, bool, bool]] = []
    position = 0
    while True:
        start = source.find("{{", position)
        if start < 0:
            pieces.append(source[position:])
            return pieces
        pieces.append(source[position:start])
        end = _action_end(source, start + 2)
        inside = source[start + 2 : end]
        trim_before = len(inside) > 1 and inside[0] == "-" and inside[1].isspace()
        trim_after = len(inside) > 1 and inside[-1] == "-" and inside[-2].isspace()
        inside = inside[2 if trim_before else 0 : len(inside) - 2 if trim_after else len(inside)]
        pieces.append((inside, trim_before, trim_after))
        position = end + 2


def _action_end(source: str, position: int) -> int:
    """Where the action opened before ``position`` closes (``}}`` outside string literals)."""
    quote = ""
    index = position
    while index < len(source) - 1:
        char = source[index]
        if quote:
            if char == "\\" and quote == '"':
                index += 1
            elif char == quote:
                quote = ""
        elif char in '"`':
            quote = char
        elif source.startswith("}}", index):
            return index
        index += 1
    raise TemplateError(f"unclosed action at {source[position - 2 : position + 20]!r}")


def _tokens(action: str) -> list[_Token]:
    tokens = []
    position = 0
    rest = action.rstrip()
    while position < len(rest):
        match = _TOKEN.match(rest, position)
        if match is None or match.end() == position:
            raise TemplateError(f"cannot read {rest[position:].strip()[:30]!r} in {{{{{action}}}}}")
        kind = match.lastgroup or ""
        tokens.append(_Token(kind, match.group(kind)))
        position = match.end()
    return tokens


# --- syntax tree ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    chain: tuple[str, ...]
    from_root: bool


@dataclass(frozen=True)
class _Literal:
    value: Any


@dataclass(frozen=True)
class _Command:
    function: str
    """A function name, or ``""`` when the command is an operand (with method arguments)."""
    args: tuple[Any, ...]


@dataclass(frozen=True)
class _Pipeline:
    commands: tuple[_Command, ...]


@dataclass
class _Block:
    keyword: str
    """``if``, ``range``, ``with`` or ``root``."""
    branches: list[tuple[_Pipeline | None, list[Any]]] = field(default_factory=list)


@dataclass(frozen=True)
class _Include:
    name: str
    pipeline: _Pipeline


class _Parser:
    def __init__(self, tokens: list[_Token], action: str) -> None:
        self.tokens, self.position, self.action = tokens, 0, action

    def peek(self) -> _Token | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise TemplateError(f"{{{{{self.action}}}}} ends too early")
        self.position += 1
        return token

    def pipeline(self) -> _Pipeline:
        commands = [self.command()]
        while (token := self.peek()) is not None and token.text == "|":
            self.take()
            commands.append(self.command())
        return _Pipeline(tuple(commands))

    def command(self) -> _Command:
        first = self.peek()
        if first is not None and first.kind == "word" and first.text not in ("true", "false", "nil"):
            self.take()
            if first.text not in FUNCTIONS:
                raise TemplateError(
                    f"function {first.text!r} is not supported (known: {', '.join(sorted(FUNCTIONS))})"
                )
            return _Command(first.text, tuple(self.operands()))
        operands = self.operands()
        if not operands:
            raise TemplateError(f"{{{{{self.action}}}}}: expected a value")
        if len(operands) > 1 and not isinstance(operands[0], _Field):
            raise TemplateError(f"{{{{{self.action}}}}}: only a function or a method takes arguments")
        return _Command("", tuple(operands))

    def operands(self) -> list[Any]:
        found: list[Any] = []
        while (token := self.peek()) is not None and token.text not in ("|", ")"):
            found.append(self.operand())
        return found

    def operand(self) -> Any:
        token = self.take()
        if token.kind == "string":
            return _Literal(orjson.loads(token.text))
        if token.kind == "raw":
            return _Literal(token.text[1:-1])
        if token.kind == "number":
            return _Literal(int(token.text))
        if token.kind == "word" and token.text in ("true", "false"):
            return _Literal(token.text == "true")
        if token.kind == "field":
            return _field(token.text)
        if token.text == "(":
            inner = self.pipeline()
            if self.take().text != ")":
                raise TemplateError(f"{{{{{self.action}}}}}: unbalanced parentheses")
            return inner
        if token.kind == "assign":
            raise TemplateError("variables ($x := ...) are not supported")
        raise TemplateError(f"{{{{{self.action}}}}}: unexpected {token.text!r}")

    def end(self) -> None:
        if self.peek() is not None:
            raise TemplateError(f"{{{{{self.action}}}}}: unexpected {self.take().text!r}")


def _field(text: str) -> _Field:
    if text.startswith("$"):
        if text not in ("$",) and not text.startswith("$."):
            raise TemplateError(f"variables ({text}) are not supported; use $ or $.Field")
        return _Field(tuple(n for n in text[1:].split(".") if n), from_root=True)
    return _Field(tuple(n for n in text.split(".") if n), from_root=False)


def parse(source: str) -> list[Any]:
    """The syntax tree of ``source``; ``TemplateError`` naming the first problem."""
    stack = [_Block("root", [(None, [])])]
    for piece in _trimmed(_split(source)):
        body = stack[-1].branches[-1][1]
        if isinstance(piece, str):
            if piece:
                body.append(piece)
            continue
        action = piece[0].strip()
        if action.startswith("/*"):
            if not action.endswith("*/"):
                raise TemplateError(f"unclosed comment {{{{{action}}}}}")
            continue
        tokens = _tokens(action)
        if not tokens:
            raise TemplateError("empty action {{}}")
        keyword = tokens[0].text if tokens[0].kind == "word" else ""
        parser = _Parser(tokens[1:] if keyword in KEYWORDS else tokens, action)
        if keyword in ("if", "range", "with"):
            block = _Block(keyword, [(parser.pipeline(), [])])
            parser.end()
            body.append(block)
            stack.append(block)
        elif keyword == "else":
            block = stack[-1]
            if block.keyword == "root" or block.branches[-1][0] is None:
                raise TemplateError("{{else}} without an open if, range or with")
            condition = None
            if parser.peek() is not None:
                if parser.take().text != "if" or block.keyword != "if":
                    raise TemplateError(f"{{{{{action}}}}}: only 'else if' may follow else")
                condition = parser.pipeline()
            parser.end()
            block.branches.append((condition, []))
        elif keyword == "end":
            if len(stack) == 1:
                raise TemplateError("{{end}} without an open if, range or with")
            parser.end()
            stack.pop()
        elif keyword == "template":
            name = parser.take()
            if name.kind not in ("string", "raw"):
                raise TemplateError(f"{{{{{action}}}}}: the template name must be a string")
            pipeline = parser.pipeline() if parser.peek() is not None else _Pipeline(())
            parser.end()
            body.append(_Include(str(_string_value(name)), pipeline))
        elif keyword in ("define", "block", "break", "continue"):
            raise TemplateError(f"{{{{{keyword}}}}} is not supported")
        else:
            body.append(parser.pipeline())
            parser.end()
    if len(stack) > 1:
        raise TemplateError(f"{{{{{stack[-1].keyword}}}}} has no {{{{end}}}}")
    return stack[0].branches[0][1]


def _string_value(token: _Token) -> Any:
    return orjson.loads(token.text) if token.kind == "string" else token.text[1:-1]


def _trimmed(pieces: list[str | tuple[str, bool, bool]]) -> Iterable[str | tuple[str, bool, bool]]:
    for index, piece in enumerate(pieces):
        if isinstance(piece, str):
            before = pieces[index - 1] if index else None
            after = pieces[index + 1] if index + 1 < len(pieces) else None
            if isinstance(before, tuple) and before[2]:
                piece = piece.lstrip()
            if isinstance(after, tuple) and after[1]:
                piece = piece.rstrip()
        yield piece


KEYWORDS = {"if", "range", "with", "else", "end", "template", "define", "block", "break", "continue"}


# --- functions ------------------------------------------------------------------------------------


def _truth(value: Any) -> bool:
    if isinstance(value, bool | int | str | Sized):
        return bool(value)
    return value is not None


def _compare(op: Callable[[Any, Any], bool]) -> Callable[..., bool]:
    def compare(left: Any, right: Any) -> bool:
        if type(left) is not type(right) and not (isinstance(left, int) and isinstance(right, int)):
            raise TemplateError(f"cannot compare {left!r} with {right!r}")
        return op(left, right)

    return compare


def _eq(first: Any, *others: Any) -> bool:
    return any(first == other for other in others)


def _and(*args: Any) -> Any:
    for arg in args:
        if not _truth(arg):
            return arg
    return args[-1]


def _or(*args: Any) -> Any:
    for arg in args:
        if _truth(arg):
            return arg
    return args[-1]


def _index(container: Any, key: Any) -> Any:
    if isinstance(container, list | tuple):
        return container[key] if isinstance(key, int) and 0 <= key < len(container) else ""
    return container.field(key) if hasattr(container, "field") else ""


@dataclass(frozen=True)
class _Function:
    run: Callable[..., Any]
    arity: tuple[int, int]
    kind: Callable[[Sequence[str]], str]
    """The result kind from the argument kinds (for checking)."""


def _fixed(kind: str) -> Callable[[Sequence[str]], str]:
    return lambda _: kind


def _same_kind(kinds: Sequence[str]) -> str:
    return kinds[0] if len(set(kinds)) == 1 else "any"


FUNCTIONS: dict[str, _Function] = {
    "len": _Function(len, (1, 1), _fixed("int")),
    "eq": _Function(_eq, (2, 99), _fixed("bool")),
    "ne": _Function(lambda a, b: a != b, (2, 2), _fixed("bool")),
    "lt": _Function(_compare(lambda a, b: a < b), (2, 2), _fixed("bool")),
    "le": _Function(_compare(lambda a, b: a <= b), (2, 2), _fixed("bool")),
    "gt": _Function(_compare(lambda a, b: a > b), (2, 2), _fixed("bool")),
    "ge": _Function(_compare(lambda a, b: a >= b), (2, 2), _fixed("bool")),
    "not": _Function(lambda a: not _truth(a), (1, 1), _fixed("bool")),
    "and": _Function(_and, (1, 99), _same_kind),
    "or": _Function(_or, (1, 99), _same_kind),
    "index": _Function(_index, (2, 2), lambda kinds: "any"),
    "toUpper": _Function(lambda s: str(s).upper(), (1, 1), _fixed("string")),
    "toLower": _Function(lambda s: str(s).lower(), (1, 1), _fixed("string")),
    "title": _Function(lambda s: str(s).title(), (1, 1), _fixed("string")),
    "trimSpace": _Function(lambda s: str(s).strip(), (1, 1), _fixed("string")),
    "safeHtml": _Function(str, (1, 1), _fixed("string")),
    "join": _Function(lambda sep, items: str(sep).join(map(str, items)), (2, 2), _fixed("string")),
}


# --- checking and evaluation ----------------------------------------------------------------------


class Template:
    """A parsed, checked template; ``render`` never meets a field the schema lacks."""

    def __init__(
        self, source: str, schema: Schema, root: str, included: Mapping[str, Template] | None = None
    ) -> None:
        self.source = source
        self._schema, self._root = schema, root
        self._included = dict(included or {})
        self._tree = parse(source)
        self._check(self._tree, root)

    # checking: the same walk as evaluation, over kinds instead of values

    def _check(self, nodes: list[Any], dot: str) -> None:
        for node in nodes:
            if isinstance(node, str):
                continue
            if isinstance(node, _Pipeline):
                self._kind(node, dot)
            elif isinstance(node, _Include):
                if node.name not in self._included:
                    raise TemplateError(
                        f'template "{node.name}" is not defined (known: {", ".join(sorted(self._included))})'
                    )
                given = self._kind(node.pipeline, dot) if node.pipeline.commands else "nil"
                if given != self._root:
                    raise TemplateError(f'{{{{template "{node.name}"}}}} needs the whole data: pass "."')
            else:
                for condition, body in node.branches:
                    inner = dot
                    if condition is not None:
                        kind = self._kind(condition, dot)
                        if node.keyword == "range" and body is node.branches[0][1]:
                            inner = self._schema.element(kind)
                        elif node.keyword == "with" and body is node.branches[0][1]:
                            inner = kind
                    self._check(body, inner)

    def _kind(self, pipeline: _Pipeline, dot: str) -> str:
        kind = ""
        for position, command in enumerate(pipeline.commands):
            method = not command.function and len(command.args) > 1
            args = [self._operand_kind(a, dot) for a in command.args[1 if method else 0 :]]
            if position:
                if not command.function:
                    raise TemplateError('only a function takes a piped value (| len, | join " ", ...)')
                args.append(kind)
            if command.function:
                function = FUNCTIONS[command.function]
                low, high = function.arity
                if not low <= len(args) <= high:
                    raise TemplateError(
                        f"{command.function} takes {low} to {high} arguments, not {len(args)}"
                    )
                kind = function.kind(args)
            elif method:
                target = command.args[0]
                assert isinstance(target, _Field)
                if not target.chain:
                    raise TemplateError("only a method takes arguments")
                owner = self._chain_kind(target, dot, len(target.chain) - 1)
                kind = self._schema.method(owner, target.chain[-1], args)
            else:
                kind = args[0]
        return kind

    def _operand_kind(self, operand: Any, dot: str) -> str:
        if isinstance(operand, _Literal):
            value = operand.value
            return "bool" if isinstance(value, bool) else "int" if isinstance(value, int) else "string"
        if isinstance(operand, _Pipeline):
            return self._kind(operand, dot)
        return self._chain_kind(operand, dot, len(operand.chain))

    def _chain_kind(self, operand: _Field, dot: str, length: int) -> str:
        kind = self._root if operand.from_root else dot
        for name in operand.chain[:length]:
            kind = self._schema.field(kind, name)
        return kind

    # evaluation

    def render(self, data: Any) -> str:
        out: list[str] = []
        self._run(self._tree, data, data, out)
        return "".join(out)[:MAX_OUTPUT]

    def _run(self, nodes: list[Any], dot: Any, root: Any, out: list[str]) -> None:
        for node in nodes:
            if sum(map(len, out)) > MAX_OUTPUT:
                return
            if isinstance(node, str):
                out.append(node)
            elif isinstance(node, _Pipeline):
                out.append(_text(self._value(node, dot, root)))
            elif isinstance(node, _Include):
                out.append(self._included[node.name].render(root))
            else:
                self._run_block(node, dot, root, out)

    def _run_block(self, block: _Block, dot: Any, root: Any, out: list[str]) -> None:
        for condition, body in block.branches:
            if condition is None:
                self._run(body, dot, root, out)
                return
            value = self._value(condition, dot, root)
            if block.keyword == "range":
                items = list(_items(value))
                for item in items:
                    self._run(body, item, root, out)
                if items:
                    return
            elif _truth(value):
                self._run(body, value if block.keyword == "with" else dot, root, out)
                return

    def _value(self, pipeline: _Pipeline, dot: Any, root: Any) -> Any:
        value: Any = None
        for position, command in enumerate(pipeline.commands):
            method = not command.function and len(command.args) > 1
            args = [self._operand(a, dot, root) for a in command.args[1 if method else 0 :]]
            if position:
                args.append(value)
            if command.function:
                value = FUNCTIONS[command.function].run(*args)
            elif method:
                target = command.args[0]
                owner = self._chain(target, dot, root, len(target.chain) - 1)
                value = owner.call(target.chain[-1], args)
            else:
                value = args[0]
        return value

    def _operand(self, operand: Any, dot: Any, root: Any) -> Any:
        if isinstance(operand, _Literal):
            return operand.value
        if isinstance(operand, _Pipeline):
            return self._value(operand, dot, root)
        return self._chain(operand, dot, root, len(operand.chain))

    @staticmethod
    def _chain(operand: _Field, dot: Any, root: Any, length: int) -> Any:
        value = root if operand.from_root else dot
        for name in operand.chain[:length]:
            value = value.field(name) if hasattr(value, "field") else ""
        return value


def _items(value: Any) -> Iterable[Any]:
    if isinstance(value, str | int | bool) or value is None:
        return ()
    if hasattr(value, "values") and callable(value.values):
        return list(value.values())
    return list(value)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int):
        return str(value)
    if value is None:
        return ""
    if hasattr(value, "as_text"):
        return str(value.as_text())
    return "[" + " ".join(_text(item) for item in value) + "]"
