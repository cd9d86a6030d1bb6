"""Market data: candle arrays, file formats, validation, quality checks, download."""
