"""The report stage: tables, drawings and plots of networks and runs.

``dataflow``: where routed inference sends a saved run's examples (plain numbers).
``draw``: Graphviz node-link diagrams of specs and of measured dataflow. ``plots``:
matplotlib figures of runs. ``summary``: the summary table of runs. ``results``: the
reproduction page. ``cli``: the ``routec draw`` and ``routec report`` commands.
"""
