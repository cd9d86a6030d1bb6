"""Bitget USDT-M perpetuals through ccxt's async client, behind the `Gateway` contract."""
