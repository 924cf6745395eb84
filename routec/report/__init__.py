"""Stage 6: tables, drawings and plots of networks and runs.

``compile_table``: the ``routec compile --report`` tables. ``dataflow``: where routed
inference sends a split's examples (plain numbers). ``draw``: Graphviz node-link
diagrams of specs and of measured dataflow. ``plots``: matplotlib figures of runs.
``summary``: cached checkpoint evaluations and the summary table. ``cli``: the
``routec draw`` and ``routec report`` commands.
"""
