"""Stage 3: generate readable PyTorch modules from validated routing graphs."""
from routec.codegen.emit import class_name, emit_module
from routec.codegen.load import build_class, load_source

__all__ = ["class_name", "emit_module", "build_class", "load_source"]
