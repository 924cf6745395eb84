"""Bundled .route specs, shipped inside the wheel as ``routec.specs``."""
