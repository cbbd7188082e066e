"""Parsing .cnn text into the syntax tree (lark LALR), with error recovery.

The parser never stops at the first syntax error. On an unexpected token it tries small
repairs -- insert a missing `)`, `]`, `}` or `,`, or drop the offending token -- and keeps
the one that lets the most following tokens parse (a local Burke-Fisher repair). One
error is reported per repair; further errors on the same line are suppressed, since they
are usually echoes of the first.
"""

from __future__ import annotations

from functools import cache

import lark
from lark import Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from ..errors import Diagnostics, Loc
from ..resources import grammar_path
from ..util import cache_root
from . import ast
from .limits import MAX_NESTING

# Terminals the recovery may insert, most useful first.
_REPAIRS = ("RPAR", "RSQB", "RBRACE", "COMMA")
_LOOKAHEAD = 8
_DESCRIPTIONS = {
    "NAME": "a name", "INT": "an integer", "FLOAT": "a number", "STRING": "a string",
    "$END": "end of file",
}


@cache
def _lark() -> lark.Lark:
    """The LALR parser, its tables cached by lark in cnnc's cache folder (building them
    took 0.2-0.3 s of every process's start; lark keys the file by the grammar, the
    options and its own version, and builds them again when the file is stale,
    unreadable or unwritable)."""
    folder = cache_root()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        cached: bool | str = str(folder / "grammar.lark-tables")
    except OSError:
        cached = False
    return lark.Lark(grammar_path().read_text(encoding="utf-8"), parser="lalr",
                     propagate_positions=True, maybe_placeholders=True, cache=cached)


def limits_depth() -> int:
    return MAX_NESTING + 1


def _describe_terminal(name: str) -> str:
    if name in _DESCRIPTIONS:
        return _DESCRIPTIONS[name]
    term = _lark().get_terminal(name)
    return f"'{term.pattern.value}'"


_VALUE_START = {"INT", "FLOAT", "STRING", "NAME", "LPAR", "LSQB", "TRUE", "FALSE"}


def _describe_expected(names) -> str:
    names = set(names)
    value = len(names & _VALUE_START) >= 5
    if value:
        names -= _VALUE_START
    items = sorted({_describe_terminal(n) for n in names}, key=lambda s: (s[0] != "'", s))
    if value:
        items.insert(0, "a value")
    if len(items) > 5:
        items = items[:5] + ["..."]
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


def _token_loc(tok: Token) -> Loc:
    return Loc(tok.line, tok.column, max(1, len(tok.value)))


class _Recovery:
    """The on_error callback: records a diagnostic and repairs the parse."""

    def __init__(self, diags: Diagnostics, tokens: list[Token]):
        self.diags = diags
        self.tokens = tokens
        self.by_pos = {t.start_pos: i for i, t in enumerate(tokens)}
        self.error_lines: set[int] = set()
        self.count = 0

    def __call__(self, e: UnexpectedInput) -> bool:
        self.count += 1
        if self.count > 200:           # a file of garbage: stop, errors so far are enough
            return False
        if isinstance(e, UnexpectedCharacters):
            text = self.diags.lines[e.line - 1] if e.line <= len(self.diags.lines) else ""
            char = text[e.column - 1] if 0 < e.column <= len(text) else "?"
            hint = "strings use double quotes" if char == "'" else None
            self._report(f"unexpected character {char!r}", Loc(e.line, e.column), hint)
            return True
        assert isinstance(e, UnexpectedToken)
        ip = e.interactive_parser
        tok = e.token
        index = self.by_pos.get(tok.start_pos) if tok.type != "$END" else len(self.tokens)
        following = self.tokens[index + 1:index + 1 + _LOOKAHEAD] if index is not None else []
        prev = self.tokens[index - 1] if index else None
        if tok.type == "$END":
            return self._end_of_file(ip, tok, prev)
        repair, _ = self._best_repair(ip, tok, following)
        if prev is not None and prev.end_line is not None and prev.end_line < tok.line \
                and repair is not None:
            loc = self._after(prev)                 # a missing closer: point after prev
        else:
            loc = _token_loc(tok)
        if repair is not None:
            self._report(f"expected {_describe_terminal(repair)}", loc)
            ip.feed_token(self._make(repair, tok))
            ip.feed_token(tok)
            return True
        expected = _describe_expected(ip.accepts())
        what = {"NAME": "name ", "INT": "integer ", "FLOAT": "number ", "STRING": "string "}
        self._report(f"unexpected {what.get(tok.type, '')}{tok.value!r}; expected {expected}",
                     loc)
        return True                              # drop the token

    def _end_of_file(self, ip, tok: Token, prev: Token | None) -> bool:
        """Close whatever is open at the end of the file, reporting the first closer."""
        loc = self._after(prev) if prev is not None else Loc(1, 1)
        expected = _describe_expected(ip.accepts())
        closers = []
        trial = ip.copy()
        for _ in range(limits_depth()):
            if "$END" in trial.accepts():
                break
            closer = next((c for c in ("RPAR", "RSQB", "RBRACE") if c in trial.accepts()), None)
            if closer is None:
                self._report(f"unexpected end of file: expected {expected}", loc)
                return False
            trial.feed_token(self._make(closer, tok))
            closers.append(closer)
        self._report(f"unexpected end of file: expected {_describe_terminal(closers[0])}"
                     if closers else f"unexpected end of file: expected {expected}", loc)
        if not closers:
            return False
        for closer in closers:
            ip.feed_token(self._make(closer, tok))
        return True

    @staticmethod
    def _make(terminal: str, at: Token) -> Token:
        return Token.new_borrow_pos(terminal, _lark().get_terminal(terminal).pattern.value, at)

    def _best_repair(self, ip, tok: Token, following: list[Token]):
        """Pick an insertion that lets `tok` and the most following tokens parse."""
        best, best_score = None, -1
        accepts = ip.accepts()
        for repair in _REPAIRS:
            if repair not in accepts:
                continue
            trial = ip.copy()
            try:
                trial.feed_token(Token.new_borrow_pos(repair, "", tok))
                trial.feed_token(tok)
            except UnexpectedInput:
                continue
            score = 1 + self._score(trial, following)
            if score > best_score:
                best, best_score = repair, score
        # Dropping the token competes with inserting one: keep whichever parses further.
        if best is not None:
            dropped = self._score(ip.copy(), following)
            if dropped > best_score:
                return None, dropped
        return best, best_score

    @staticmethod
    def _score(trial, following: list[Token]) -> int:
        n = 0
        for t in following:
            try:
                trial.feed_token(t)
            except UnexpectedInput:
                break
            n += 1
        return n

    @staticmethod
    def _after(tok: Token) -> Loc:
        return Loc(tok.end_line, tok.end_column, 1)

    def _report(self, message: str, loc: Loc, hint: str | None = None) -> None:
        if loc.line in self.error_lines:
            return
        self.error_lines.add(loc.line)
        self.diags.error(message, loc, hint)


def _loc(meta_or_token) -> Loc:
    if isinstance(meta_or_token, Token):
        return _token_loc(meta_or_token)
    return Loc(meta_or_token.line, meta_or_token.column,
               max(1, meta_or_token.end_column - meta_or_token.column)
               if meta_or_token.end_line == meta_or_token.line else 1)


class _ToAst(Transformer):
    """Parse tree -> :mod:`cnnc.frontend.ast`."""

    def __init__(self, diags: Diagnostics):
        super().__init__()
        self.diags = diags

    def start(self, blocks):
        return ast.File(tuple(b for b in blocks if isinstance(b, ast.ModelBlock)),
                        tuple(b for b in blocks if isinstance(b, ast.TrainBlock)))

    @v_args(meta=True)
    def model(self, meta, children):
        name, *body = children
        return ast.ModelBlock(str(name), tuple(body), _loc(name), meta.line, meta.end_line)

    def train(self, children):
        name, *settings = children
        return ast.TrainBlock(str(name), tuple(settings), _loc(name))

    def layer(self, children):
        name, args = children
        return ast.Layer(str(name), tuple(args or ()), _loc(name))

    @v_args(meta=True)
    def residual(self, meta, body):
        return ast.Residual(tuple(body), Loc(meta.line, meta.column, len("residual")))

    def setting(self, children):
        key, value = children
        return ast.Setting(str(key), value, _loc(key))

    def arglist(self, args):
        return [a for a in args if a is not None]

    def positional(self, children):
        (value,) = children
        return ast.Arg(None, value, value.loc)

    def keyword(self, children):
        key, value = children
        return ast.Arg(str(key), value, _loc(key))

    def int(self, children):
        (tok,) = children
        return ast.Int(int(tok), _loc(tok))

    def float(self, children):
        (tok,) = children
        return ast.Float(float(tok), _loc(tok))

    def string(self, children):
        (tok,) = children
        return ast.Str(_unescape(tok), _loc(tok))

    @v_args(meta=True)
    def true(self, meta, _):
        return ast.Bool(True, _loc(meta))

    @v_args(meta=True)
    def false(self, meta, _):
        return ast.Bool(False, _loc(meta))

    def ident(self, children):
        (tok,) = children
        return ast.Ident(str(tok), _loc(tok))

    def call(self, children):
        name, args = children
        return ast.Call(str(name), tuple(args or ()), _loc(name))

    @v_args(meta=True)
    def tuple(self, meta, items):
        return ast.Tuple(tuple(i for i in items if i is not None), _loc(meta))

    @v_args(meta=True)
    def list(self, meta, items):
        return ast.List(tuple(i for i in items if i is not None), _loc(meta))


def _unescape(tok: Token) -> str:
    body = str(tok)[1:-1]
    out, i = [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            nxt = body[i + 1]
            out.append({"n": "\n", "t": "\t", "\\": "\\", '"': '"'}.get(nxt, "\\" + nxt))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _pre_lex(text: str) -> list[Token]:
    """All tokens the basic lexer can read (up to the first bad character), for lookahead."""
    tokens: list[Token] = []
    try:
        for tok in _lark().lex(text):
            tokens.append(tok)
    except UnexpectedInput:
        pass
    return tokens


def parse_text(text: str, diags: Diagnostics) -> ast.File | None:
    """Parse `text`; syntax errors go to `diags`. Returns None if no tree could be built."""
    tokens = _pre_lex(text)
    recovery = _Recovery(diags, tokens)
    try:
        tree = _lark().parse(text, on_error=recovery)
    except UnexpectedInput as e:
        if not diags:
            diags.error("cannot parse this file", Loc(getattr(e, "line", 1) or 1,
                                                      getattr(e, "column", 1) or 1))
        return None
    return _ToAst(diags).transform(tree)
