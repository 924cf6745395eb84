"""The runtime stage: what generated networks import at run time. Besides
``routec.errors`` it reads only the graph stage (docs/design.md), and only for what
Python code defines: registered layer kinds and supplied models."""
from routec.runtime import layers, routing
from routec.runtime.routing import DenseOutput, RoutedNetwork, RoutedOutput, argmax_policy

__all__ = ["layers", "routing", "DenseOutput", "RoutedNetwork", "RoutedOutput",
           "argmax_policy"]
