"""routec: compile, train and inspect dynamically-routed neural networks.

Pipeline (one direction): parse → graph (validate, count MACs) → codegen →
runtime → train → report; ``routec.cli`` wires the stages.
"""
__version__ = "0.1.0"
