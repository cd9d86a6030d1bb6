"""Radar's console: a Textual app hosting the engine's API in the same event loop.

Depends on `core/` (through `core.engine.api.EngineAPI` and the event stream only);
`core/` never imports this package.
"""
