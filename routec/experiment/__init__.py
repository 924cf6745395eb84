"""The paper's experiments as named suites of runs (``routec experiment``)."""
