"""`load_config(config_dir)`: the five YAML files (and the optional `health.yaml`), validated,
as one `RadarConfig`."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from core.config.alert_rules import AlertRulesConfig, load_alert_rules
from core.config.assets import AssetConfig, AssetsFile
from core.config.base import ConfigModel
from core.config.exchanges import ExchangeConfig, ExchangesFile
from core.config.grids import build_grids
from core.config.health import HealthConfig
from core.config.risk import RiskConfig
from core.config.scenarios import ScenariosConfig, load_scenarios
from core.config.secret_keys import refuse_secret_keys
from core.config.strategies import StrategySettings, build_strategies
from core.config.translate import to_config_error
from core.config.yaml_doc import YamlDoc, read_yaml
from core.errors import ConfigError

ASSETS_FILE = "assets.yaml"
STRATEGIES_FILE = "strategies.yaml"
GRIDS_FILE = "param_grids.yaml"
RISK_FILE = "risk.yaml"
EXCHANGES_FILE = "exchanges.yaml"
#: Optional file: absent, every health threshold takes its default (`core.config.health`).
HEALTH_FILE = "health.yaml"

#: Every file of a config folder, in the order they are read and validated.
CONFIG_FILES = (ASSETS_FILE, STRATEGIES_FILE, GRIDS_FILE, RISK_FILE, EXCHANGES_FILE)

M = TypeVar("M", bound=ConfigModel)


class RadarConfig(BaseModel):
    """The whole validated config of one folder (secrets excluded: see `load_secrets`).

    Attributes:
        config_dir: the folder as given to `load_config`.
        assets: `assets.yaml`, in file order.
        strategies: every registered strategy name -> its settings (a
            strategy absent from `strategies.yaml` is disabled, default params).
        param_grids: strategy -> {parameter -> values} for the strategies with a grid.
        risk: `risk.yaml`.
        exchanges: account name -> `exchanges.yaml` entry.
        health: `health.yaml` (the defaults when the folder has none).
        scenarios: `scenarios.yaml` (risk of the book; the defaults when the folder has none).
        alert_rules: `alert_rules.yaml` (the defaults when the folder has none; `core.config.alert_rules`).
    """

    model_config = ConfigDict(frozen=True)

    config_dir: Path
    assets: list[AssetConfig]
    strategies: dict[str, StrategySettings]
    param_grids: dict[str, dict[str, list[Any]]]
    risk: RiskConfig
    exchanges: dict[str, ExchangeConfig]
    health: HealthConfig = HealthConfig()
    scenarios: ScenariosConfig = ScenariosConfig()
    alert_rules: AlertRulesConfig = AlertRulesConfig()

    def file(self, name: str) -> str:
        """The path of config file `name` (e.g. "risk.yaml") as used in error messages."""
        return str(self.config_dir / name)

    def enabled_strategies(self) -> list[str]:
        """Names of the enabled strategies, in registry order."""
        return [name for name, s in self.strategies.items() if s.enabled]

    def symbols(self) -> list[str]:
        """Every asset symbol, in file order."""
        return [a.symbol for a in self.assets]


def _validate(doc: YamlDoc, model: type[M]) -> M:
    try:
        return model.model_validate(doc.data, strict=True)
    except ValidationError as err:
        raise to_config_error(err, doc, model) from None


def load_config(config_dir: Path) -> RadarConfig:
    """Read and validate `assets.yaml`, `strategies.yaml`, `param_grids.yaml`, `risk.yaml`
    and `exchanges.yaml` of `config_dir`, and its `health.yaml` when there is one (optional:
    absent, the defaults of `core.config.health`). Reads only; writes nothing.

    Raises:
        ConfigError: the folder or a file is missing, a file is not valid
            YAML, holds a secret-looking key, or a value is invalid. The error
            names the file (`config_dir / name` as given), the dotted key path
            and what was expected; the first problem found is reported.
    """
    config_dir = Path(config_dir)
    if not config_dir.is_dir():
        raise ConfigError(str(config_dir), "", "config folder not found; expected a folder holding "
                          + ", ".join(CONFIG_FILES))
    docs: dict[str, YamlDoc] = {}
    for name in CONFIG_FILES:
        doc = read_yaml(config_dir / name)
        refuse_secret_keys(doc)
        docs[name] = doc
    assets = _validate(docs[ASSETS_FILE], AssetsFile).assets
    strategies = build_strategies(docs[STRATEGIES_FILE], [a.symbol for a in assets])
    grids = build_grids(docs[GRIDS_FILE])
    risk = _validate(docs[RISK_FILE], RiskConfig)
    exchanges = _validate(docs[EXCHANGES_FILE], ExchangesFile).exchanges
    health = HealthConfig()
    if (config_dir / HEALTH_FILE).exists():
        doc = read_yaml(config_dir / HEALTH_FILE)
        refuse_secret_keys(doc)
        health = _validate(doc, HealthConfig)
    alert_rules = load_alert_rules(config_dir, risk.limits.max_drawdown)   # optional alert_rules.yaml
    scenarios = load_scenarios(config_dir)   # optional scenarios.yaml (core.config.scenarios)
    return RadarConfig(config_dir=config_dir, assets=assets, strategies=strategies,
                       param_grids=grids, risk=risk, exchanges=exchanges, health=health, alert_rules=alert_rules,
                       scenarios=scenarios)
