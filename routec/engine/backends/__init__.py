"""One module per inference engine, each declaring its :class:`~routec.engine.registry.Engine`
as ``ENGINE``; the module's name is the engine's name. :mod:`routec.engine.registry`
lists them, and nothing else spells an engine's name."""
