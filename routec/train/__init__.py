"""The train stage: training strategies (actor, critics, static, multi-exit), TALR, the loop."""
