"""Building a generated module in memory, without writing a file.

The source is registered with :mod:`linecache` and the module in ``sys.modules``
under a name derived from the source's hash, so tracebacks show the generated
lines and the class can be pickled like any importable class.
"""
from __future__ import annotations

import hashlib
import linecache
import sys
import types

from routec.codegen.emit import class_name, emit_module
from routec.graph.build import RoutingGraph
from routec.runtime.routing import RoutedNetwork


def load_source(source: str, cls: str) -> type[RoutedNetwork]:
    """Execute generated ``source`` as a module and return its network class."""
    digest = hashlib.sha256(source.encode("utf-8")).hexdigest()[:16]
    name = f"routec_generated_{digest}"
    module = sys.modules.get(name)
    if module is None:
        filename = f"<routec-generated {digest}>"
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        module = types.ModuleType(name)
        module.__file__ = filename
        code = compile(source, filename, "exec")
        sys.modules[name] = module
        exec(code, module.__dict__)
    return getattr(module, cls)


def build_class(g: RoutingGraph) -> type[RoutedNetwork]:
    """The network class for ``g``, generated and loaded in memory."""
    return load_source(emit_module(g), class_name(g.name))
