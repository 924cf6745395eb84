"""The .route grammar, shipped inside the wheel as ``routec.grammars``."""
