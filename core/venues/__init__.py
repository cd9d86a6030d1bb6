"""Venues behind the executor's `Gateway` contract (`core.executor.gateway`): the simulated
venue (`core.venues.sim`, the matching engines) and the exchanges (`core.venues.bitget`,
Bitget USDT-M perpetuals through ccxt). Paper and live differ only in the venue."""
