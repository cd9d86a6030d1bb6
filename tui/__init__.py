"""Radar's console: a Textual app on one engine port (`core.api.local_port.LocalPort` for an
engine in this process, `tui.remote.RemoteEngine` for one reached through its API socket).

Depends on `core/` through that port's typed views (`core.api.views`), its event stream and its
commands; `core/` never imports this package.
"""
