"""routec: compile, train and inspect dynamically-routed neural networks.

Pipeline (one direction, declared in docs/design.md): parse → graph (validate,
count MACs) → runtime → codegen → data → train → engine → experiment → report;
``routec.cli`` wires the stages. The names below are
the stable Python API (see docs/api.md); they are imported on first use so that
``import routec`` stays light.
"""
from __future__ import annotations

from routec.lazy import lazy_exports

__version__ = "0.1.0"

_API = {
    # compile
    "parse_spec": "routec.parse", "load_spec": "routec.parse",
    "bundled_specs": "routec.parse", "build_graph": "routec.graph",
    "RoutingGraph": "routec.graph", "static_prefix": "routec.graph",
    "compile_network": "routec.api", "CompiledNetwork": "routec.api",
    "emit_module": "routec.codegen",
    "register_layer": "routec.graph.registry", "LayerParam": "routec.graph.arguments:Param",
    # models the user already has
    "register_model": "routec.backbone.registry", "supply_model": "routec.backbone.supplied:supply",
    "load_weights": "routec.backbone.registry",
    # run
    "RoutedNetwork": "routec.runtime.routing", "DenseOutput": "routec.runtime.routing",
    "RoutedOutput": "routec.runtime.routing", "argmax_policy": "routec.runtime.routing",
    # train
    "actor_loss": "routec.train.actor", "critic_loss": "routec.train.critic",
    "sampled_critic_loss": "routec.train.sampled", "static_loss": "routec.train.static",
    "multi_exit_loss": "routec.train.static", "StepResult": "routec.train.costs",
    "node_params": "routec.train.costs", "apply_talr": "routec.train.talr",
    "talr_scales": "routec.train.talr", "RunConfig": "routec.train.config",
    "make_config": "routec.train.config", "train_run": "routec.train.loop:train",
    "load_run": "routec.train.run_dir",
    # evaluate
    "evaluate": "routec.train.evaluate", "EvalResult": "routec.train.evaluate",
    "ConfidencePolicy": "routec.train.evaluate",
    # inference engines
    "optimize_for_inference": "routec.engine.engines",
    # data
    "load_dataset": "routec.data", "available_datasets": "routec.data",
    # errors
    "RoutecError": "routec.errors", "SpecError": "routec.errors", "RunError": "routec.errors",
    "DataError": "routec.errors",
}

__all__ = ["__version__", *_API]


__getattr__ = lazy_exports(__name__, _API)


def __dir__() -> list[str]:
    return sorted(__all__)
