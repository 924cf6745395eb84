"""Stage 4: what generated networks import at run time (and nothing upstream)."""
from routec.runtime import layers, routing
from routec.runtime.routing import DenseOutput, RoutedNetwork, RoutedOutput, argmax_policy

__all__ = ["layers", "routing", "DenseOutput", "RoutedNetwork", "RoutedOutput",
           "argmax_policy"]
