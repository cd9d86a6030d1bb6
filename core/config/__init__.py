"""Radar's validated configuration: five YAML files (pydantic v2) and secrets from the environment.

* `load_config(config_dir) -> RadarConfig`: assets, strategies, param grids,
  risk and exchanges (and the optional health thresholds), every file validated; any problem raises one
  `ConfigError` naming the file, the dotted key path and what was expected.
* `strategy_params(cfg, strategy, symbol)`, `param_grid(cfg, strategy)`.
* `load_secrets()`: API keys and the Telegram token from the environment or
  `.env` (never YAML), as `SecretStr`; `install_redaction` keeps them out of logs.
"""

from core.config.assets import AssetConfig
from core.config.exchanges import ExchangeConfig
from core.config.grids import grid_size
from core.config.health import HealthConfig
from core.config.loader import CONFIG_FILES, RadarConfig, load_config
from core.config.lookup import param_grid, strategy_params
from core.config.redact import SecretRedactor, install_redaction
from core.config.risk import RiskConfig
from core.config.secrets import Secrets, load_secrets
from core.config.strategies import StrategySettings

__all__ = [
    "AssetConfig", "CONFIG_FILES", "ExchangeConfig", "HealthConfig", "RadarConfig", "RiskConfig", "SecretRedactor",
    "Secrets", "StrategySettings", "grid_size", "install_redaction", "load_config", "load_secrets",
    "param_grid", "strategy_params",
]
