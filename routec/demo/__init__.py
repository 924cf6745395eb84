"""``routec demo``: the first minute — a routed network beside its static baseline.

Trains the bundled ``demo`` chain twice on the data at hand (the paper's hybrid
MNIST/CIFAR-10 set when the data root has it, the built-in synthetic set
otherwise): once as a static network through every column, once as a routed
network with the actor strategy. Then it evaluates both on the test split, times
both in the fastest inference engine available here (each side gets every engine),
prints one side-by-side table and the per-class exits, and draws the dataflow.
"""
