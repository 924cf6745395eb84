"""Stage 5: training strategies (actor, critics, static, multi-exit), TALR, the loop."""
