"""Turning Lark's parse tree into :class:`routec.spec.NetworkSpec`.

Checks that need only the text of one declaration happen here (bad numbers,
unknown options, duplicate names, reserved names); checks that need the whole
network (references, shapes, arity) happen in :mod:`routec.graph`.
"""
from __future__ import annotations

import keyword
import math
from typing import Any

from lark import Token, Transformer, Tree, v_args

from routec.errors import SourcePos, SpecError
from routec import spec as S

# Column names become attribute names of the generated nn.Module and variable
# names in its code, so they may not shadow Python keywords or nn.Module members.
RESERVED = frozenset(keyword.kwlist) | frozenset(
    {
        "self", "torch", "nn", "R", "L", "x", "k_cpt", "policy", "out", "forward", "route",
        "train", "eval", "training", "cuda", "cpu", "to", "float", "double", "half",
        "parameters", "buffers", "children", "modules", "state_dict", "apply", "zero_grad",
        "register_buffer", "register_module", "add_module", "type", "extra_repr",
        "stem", "exit", "default", "either", "network", "column", "router", "def", "model",
        # the rest of nn.Module's members (torch 2.x) and routec's RoutedNetwork's
        "T_destination", "bfloat16", "call_super_init", "compile", "dump_patches",
        "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "ipu",
        "load_state_dict", "mtia", "named_buffers", "named_children", "named_modules",
        "named_parameters", "register_backward_hook", "register_forward_hook",
        "register_forward_pre_hook", "register_full_backward_hook",
        "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
        "register_load_state_dict_pre_hook", "register_parameter",
        "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
        "set_extra_state", "set_submodule", "share_memory", "to_empty", "xpu",
        "NAME", "SPEC_SHA256", "INPUT_SHAPE", "CLASSES", "DYNAMIC_KCPT", "NODES", "KINDS",
        "PARENT", "WAY", "MACS", "LEAVES", "JUNCTIONS", "WAYS", "TREE", "path", "path_macs",
    }
)
MAX_INT = 1 << 24  # no channel count, size or class count in a sane spec is bigger


def _flatten(children: list[Any]) -> list[Any]:
    """``items: item | items "," item`` arrives as [list, item]; make it one list."""
    if children and isinstance(children[0], list):
        return [*children[0], *children[1:]]
    return [c for c in children if c is not None]


class _Builder(Transformer):
    """Bottom-up conversion; every product keeps the line/column it started at."""

    def option_list(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    def options(self, children: list[Any]) -> list[Any]:
        return children[0] if children else []

    def statements(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    def layers(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    def argument_list(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    def items(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    def branches(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    def __init__(self, file: str, source: str) -> None:
        super().__init__()
        self.file = file
        self.source = source

    def _error(self, message: str, line: int, column: int, hint: str | None = None,
               kind: str = "spec") -> SpecError:
        return SpecError(message, SourcePos(self.file, line, column), self.source, hint, kind)

    # values -----------------------------------------------------------------------
    def number(self, children: list[Token]) -> S.Number:
        (tok,) = children
        text = str(tok)
        try:
            if any(c in text for c in ".eE"):
                value: int | float = float(text)
                if not math.isfinite(value):
                    raise ValueError
            else:
                value = int(text)
        except ValueError:
            raise self._error(f"bad number '{text}'", tok.line, tok.column, kind="bad-number",
                              hint="numbers are integers like 16 or decimals like 1e-9") from None
        if isinstance(value, int) and abs(value) > MAX_INT:
            raise self._error(f"number {value} is too large (limit {MAX_INT})", tok.line,
                              tok.column, kind="bad-number",
                              hint="channel counts, sizes and class counts are small integers")
        return S.Number(line=tok.line, column=tok.column, value=value)

    def string(self, children: list[Token]) -> S.String:
        (tok,) = children
        return S.String(line=tok.line, column=tok.column, value=str(tok)[1:-1])

    def name(self, children: list[Token]) -> S.Name:
        (tok,) = children
        return S.Name(line=tok.line, column=tok.column, value=str(tok))

    @v_args(meta=True)
    def list(self, meta: Any, children: list[Any]) -> S.ListValue:
        items = tuple(children[0]) if children else ()
        return S.ListValue(line=meta.line, column=meta.column, items=items)

    # calls ------------------------------------------------------------------------
    @v_args(meta=True)
    def argument(self, meta: Any, children: list[Any]) -> S.Argument:
        (value,) = children
        return S.Argument(line=value.line, column=value.column, keyword=None, value=value)

    def keyword(self, children: list[Any]) -> S.Argument:
        key, value = children
        return S.Argument(line=key.line, column=key.column, keyword=str(key), value=value)

    def arguments(self, children: list[Any]) -> tuple[S.Argument, ...]:
        args = tuple(children[0]) if children else ()
        seen: set[str] = set()
        positional_done = False
        for arg in args:
            if arg.keyword is None:
                if positional_done:
                    raise self._error("positional argument after a keyword argument",
                                      arg.line, arg.column, kind="syntax",
                                      hint="put positional arguments first: conv(16, kernel = 3)")
            else:
                positional_done = True
                if arg.keyword in seen:
                    raise self._error(f"argument '{arg.keyword}' given twice", arg.line,
                                      arg.column, kind="duplicate",
                                      hint="give each keyword argument once")
                seen.add(arg.keyword)
        return args

    def layer_argument_list(self, children: list[Any]) -> list[Any]:
        return _flatten(children)

    @v_args(meta=True)
    def layer_argument(self, meta: Any, children: list[Any]) -> S.Argument:
        return self.argument(meta, children)

    def layer_keyword(self, children: list[Any]) -> S.Argument:
        return self.keyword(children)

    def layer_arguments(self, children: list[Any]) -> tuple[S.Argument, ...]:
        return self.arguments(children)

    def layer_chain(self, children: list[Any]) -> S.Value:
        """A layer chain as an argument; one bare name stays a name (``conv(w)``)."""
        (calls,) = children
        calls = calls if isinstance(calls, list) else [calls]
        first = calls[0]
        if len(calls) == 1 and not first.args:
            return S.Name(line=first.line, column=first.column, value=first.name)
        return S.LayersValue(line=first.line, column=first.column, calls=tuple(calls))

    def call(self, children: list[Any]) -> S.Call:
        name, args = children
        return S.Call(line=name.line, column=name.column, name=str(name), args=args or ())

    def layer(self, children: list[Any]) -> S.Call:
        return self.call(children)

    def layer_list(self, children: list[Any]) -> S.Call:
        name, items = children
        arg = S.Argument(line=items.line, column=items.column, keyword=None, value=items)
        return S.Call(line=name.line, column=name.column, name=str(name), args=(arg,))

    # declarations -----------------------------------------------------------------
    def params(self, children: list[Any]) -> tuple[Token, ...]:
        return tuple(c for c in children if c is not None)

    def stem(self, children: list[Any]) -> tuple[str, Any]:
        (call,) = children
        return ("stem", call)

    def model(self, children: list[Any]) -> tuple[str, Any]:
        name, args = children
        self._check_name(name, "model")
        return ("model", S.Call(line=name.line, column=name.column, name=str(name),
                                args=args or ()))

    def router(self, children: list[Any]) -> tuple[str, Any]:
        name, call = children
        return ("router", (name, call))

    def exit_head(self, children: list[Any]) -> tuple[str, Any]:
        name, call = children
        return ("exit", (name, call))

    def column(self, children: list[Any]) -> tuple[str, Any]:
        name, params, layers = children
        params = params or ()
        seen: set[str] = set()
        for p in params:
            self._check_name(p, "parameter")
            if str(p) in seen:
                raise self._error(f"parameter '{p}' given twice", p.line, p.column,
                                  kind="duplicate", hint="template parameters need distinct names")
            seen.add(str(p))
        self._check_name(name, "column")
        return ("column", S.ColumnTemplate(line=name.line, column=name.column, name=str(name),
                                           params=tuple(str(p) for p in params),
                                           layers=tuple(layers)))

    def macro(self, children: list[Any]) -> tuple[str, Any]:
        name, chain = children
        self._check_name(name, "def")
        return ("macro", S.Macro(line=name.line, column=name.column, name=str(name), chain=chain))

    @v_args(meta=True)
    def route(self, meta: Any, children: list[Any]) -> tuple[str, Any]:
        (chain,) = children
        return ("route", (meta, chain))

    def _check_name(self, tok: Token, what: str) -> None:
        if str(tok) in RESERVED or str(tok).startswith("_"):  # "_x": nn.Module internals
            raise self._error(f"'{tok}' is a reserved word and cannot name a {what}",
                              tok.line, tok.column, kind="reserved",
                              hint="pick another name, e.g. add a suffix: "
                                   f"{str(tok).lstrip('_') or what}_1")

    # routes -----------------------------------------------------------------------
    def chain(self, children: list[Any]) -> S.Chain:
        first = children[0]
        if isinstance(first, S.Chain):
            return S.Chain(line=first.line, column=first.column,
                           steps=(*first.steps, *children[1:]))
        # flattened by _splice_lists: every step at once (a step is never a Chain)
        return S.Chain(line=first.line, column=first.column, steps=tuple(children))

    def reference(self, children: list[Any]) -> S.Reference:
        name, args = children
        return S.Reference(line=name.line, column=name.column, name=str(name), args=args or ())

    @v_args(meta=True)
    def junction(self, meta: Any, children: list[Any]) -> S.Junction:
        router, branches = children
        return S.Junction(line=meta.line, column=meta.column,
                          router=str(router) if router is not None else "default",
                          branches=tuple(branches))

    def junction_router(self, children: list[Any]) -> Token | None:
        return children[0] if children else None

    @v_args(meta=True)
    def leaf(self, meta: Any, children: list[Any]) -> S.Leaf:
        (head,) = children
        return S.Leaf(line=meta.line, column=meta.column,
                      head=str(head) if head is not None else "default")

    # the network ------------------------------------------------------------------
    def option(self, children: list[Any]) -> tuple[Token, Any]:
        name, value = children
        return (name, value)

    @v_args(meta=True)
    def network(self, meta: Any, children: list[Any]) -> S.NetworkSpec:
        name, options, statements = children
        input_shape, classes = self._options(name, options)

        stem: S.Call | None = None
        route: S.Chain | None = None
        routers: dict[str, S.Call] = {}
        exits: dict[str, S.Call] = {}
        columns: dict[str, S.ColumnTemplate] = {}
        macros: dict[str, S.Macro] = {}
        models: dict[str, S.Call] = {}
        for kind, payload in statements:
            if kind == "model":
                if payload.name in models:
                    raise self._error(f"model '{payload.name}' is declared twice", payload.line,
                                      payload.column, kind="duplicate",
                                      hint=f"the first one is at line {models[payload.name].line}")
                models[payload.name] = payload
            elif kind == "stem":
                if stem is not None:
                    raise self._error("the stem is given twice", payload.line, payload.column,
                                      kind="duplicate",
                                      hint=f"the first one is at line {stem.line}")
                stem = payload
            elif kind in ("router", "exit"):
                tok, call = payload
                table = routers if kind == "router" else exits
                if str(tok) in table:
                    raise self._error(f"{kind} head '{tok}' is defined twice", tok.line,
                                      tok.column, kind="duplicate",
                                      hint=f"the first one is at line {table[str(tok)].line}")
                table[str(tok)] = call
            elif kind in ("column", "macro"):
                item = payload
                if item.name in columns or item.name in macros:
                    first = columns.get(item.name) or macros[item.name]
                    raise self._error(f"name '{item.name}' is defined twice", item.line,
                                      item.column, kind="duplicate",
                                      hint=f"the first one is at line {first.line}; columns "
                                           "and defs share one namespace")
                (columns if kind == "column" else macros)[item.name] = item
            elif kind == "route":
                route_meta, chain = payload
                if route is not None:
                    raise self._error("the route is given twice", route_meta.line,
                                      route_meta.column, kind="duplicate",
                                      hint="a network has exactly one route; use `def` for "
                                           "reusable subtrees")
                route = chain
        if route is None:
            raise self._error(f"network '{name}' has no route", name.line, name.column,
                              kind="missing-route",
                              hint="add a line such as: route c1 -> exit")
        return S.NetworkSpec(
            name=str(name), line=name.line, column=name.column, file=self.file,
            source=self.source, input_shape=input_shape, classes=classes, stem=stem,
            routers=routers, exits=exits, columns=columns, macros=macros, route=route,
            models=models,
        )

    def _options(self, net: Token, options: list[tuple[Token, Any]]
                 ) -> tuple[tuple[int, int, int], int | None]:
        found: dict[str, tuple[Token, Any]] = {}
        for tok, value in options:
            key = str(tok)
            if key not in ("input", "classes"):
                raise self._error(f"unknown network option '{key}'", tok.line, tok.column,
                                  kind="unknown-option",
                                  hint="network options are: input = CxHxW, classes = N")
            if key in found:
                raise self._error(f"network option '{key}' given twice", tok.line, tok.column,
                                  kind="duplicate", hint="give each network option once")
            found[key] = (tok, value)
        if "input" not in found:
            raise self._error(f"network '{net}' does not say its input shape", net.line,
                              net.column, kind="missing-input",
                              hint=f"write: network {net} (input = 3x32x32) {{ ... }}")
        tok, value = found["input"]
        if not isinstance(value, Token) or value.type != "SHAPE":
            at = value if isinstance(value, (Token, S.Node)) else tok
            raise self._error("input must be a shape like 3x32x32", at.line, at.column,
                              kind="bad-number",
                              hint="input is channels x height x width, e.g. 3x32x32")
        try:
            dims = [int(d) for d in str(value).replace(" ", "").replace("\t", "").split("x")]
        except ValueError:  # more digits than int() accepts: far out of range anyway
            dims = []
        if len(dims) != 3 or any(d < 1 or d > 4096 for d in dims):
            raise self._error(f"bad input shape '{value}'", value.line, value.column,
                              kind="bad-number",
                              hint="input is channels x height x width, each between 1 "
                                   "and 4096, e.g. 3x32x32")
        classes: int | None = None
        if "classes" in found:
            tok, value = found["classes"]
            if not (isinstance(value, S.Number) and isinstance(value.value, int)
                    and 2 <= value.value <= 100_000):
                at = value if isinstance(value, (Token, S.Node)) else tok
                raise self._error("classes must be a whole number from 2 to 100000",
                                  at.line, at.column, kind="bad-number",
                                  hint="classes is the number of labels, e.g. classes = 10")
            classes = value.value
        return (dims[0], dims[1], dims[2]), classes

    def start(self, children: list[Any]) -> S.NetworkSpec:
        (network,) = children
        return network


# `a | b | c` and `a -> b -> c` (routes and columns) are left-recursive rules: Lark nests
# one tree per item, so 10,000 branches of one junction made a tree 10,000 deep, whose
# recursive conversion overflowed Python's stack: "nested too deeply" at 1:1.
# Spliced into one node per list, the tree is only as deep as the route's nesting, and
# a long list meets the limit it really exceeds (the expanded network's node count).
_LEFT_RECURSIVE = frozenset({"branches", "chain", "layers"})


def _splice_lists(tree: Tree) -> None:
    """Turn every left-recursive list of ``tree`` into one node holding all its items
    (in order), without recursion."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if node.data in _LEFT_RECURSIVE:
            tails = []
            head = node
            while (head.children and isinstance(head.children[0], Tree)
                   and head.children[0].data == node.data):
                tails.append(head.children[1:])
                head = head.children[0]
            if tails:
                node.children = [*head.children, *(c for t in reversed(tails) for c in t)]
        stack.extend(c for c in node.children if isinstance(c, Tree))


def to_spec(tree: Tree, file: str, source: str) -> S.NetworkSpec:
    """Convert a parse tree; raises :class:`SpecError` for faults visible locally."""
    from lark.exceptions import VisitError

    _splice_lists(tree)
    try:
        return _Builder(file, source).transform(tree)
    except VisitError as err:  # Lark wraps exceptions raised inside callbacks
        if isinstance(err.orig_exc, SpecError):
            raise err.orig_exc from None
        if isinstance(err.orig_exc, RecursionError):
            raise RecursionError from None  # parse_spec reports it as a too-deep spec
        raise
