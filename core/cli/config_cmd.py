"""`radar config check`: validate the YAML config, `grading.yaml` and the secrets; print a short summary.

Reads only: never opens or creates the database. A problem raises
ConfigError, which the CLI prints as one line (file, key, what was expected)
and exits 2 with. `grading.yaml` is the one of --config-dir, or the packaged
one when that folder has none (as `radar optimize` does).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from core.config import RadarConfig, grid_size, load_config, load_secrets
from core.config.secrets import Secrets

if TYPE_CHECKING:  # core.optimize.grade imports numpy: loaded only when checking
    from core.optimize.grade import GradingConfig

#: The grading file's name inside --config-dir.
GRADING_FILE = "grading.yaml"


def register(sub: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    """Add `config` with its `check` subcommand to the top-level parser."""
    p = sub.add_parser("config", help="validate the YAML config")
    csub = p.add_subparsers(dest="config_command", metavar="CONFIG_COMMAND")
    csub.required = True
    c = csub.add_parser("check", help="validate --config-dir and the secrets; print a summary",
                        description="Load and validate the five YAML files of --config-dir, its "
                                    "grading.yaml (the packaged one when absent) and the secrets "
                                    "(environment, then --env-file); print a summary. "
                                    "Exit code 2 on the first problem.")
    c.add_argument("--env-file", type=Path, default=Path(".env"),
                   help="the .env file with the secrets (default: ./.env; a missing file is fine)")
    c.set_defaults(func=cmd_check)


def grading_path(config_dir: Path) -> Path:
    """The grading file used with `config_dir`: its `grading.yaml`, else the packaged one."""
    from core.optimize.grade import DEFAULT_GRADING_FILE

    own = Path(config_dir) / GRADING_FILE
    return own if own.is_file() else DEFAULT_GRADING_FILE


def cmd_check(args: argparse.Namespace) -> int:
    """`radar config check`: 0 when the config, grading.yaml and the secrets are valid.

    Raises:
        ConfigError (exit 2): the first problem, naming the file, the dotted key and what was expected.
    """
    from core.optimize.grade import load_grading_config

    cfg = load_config(args.config_dir)
    grading_file = grading_path(args.config_dir)
    grading = load_grading_config(grading_file)
    secrets = load_secrets(dotenv_path=args.env_file)
    console = Console(file=sys.stdout, width=None if sys.stdout.isatty() else 120, highlight=False)
    print_summary(console, cfg, secrets, (grading_file, grading))
    return 0


def _grading_line(path: Path, grading: GradingConfig, config_dir: Path) -> str:
    """One summary line: which grading file and profile, its weights, grade thresholds and caps."""
    w, g, caps = grading.weights, grading.grades, grading.caps
    where = str(path) if path.parent == Path(config_dir) else f"{path} (packaged; {config_dir} has none)"
    weights = ", ".join(f"{c} {v:g}" for c, v in w.items())
    return (f"grading: {where}: profile {grading.name}: weights {weights}; A >= {g.A:g}, B >= {g.B:g}, C >= {g.C:g}, "
            f"D >= {g.D:g}; {len(caps)} cap{'s' if len(caps) != 1 else ''}")


def print_summary(console: Console, cfg: RadarConfig, secrets: Secrets,
                  grading: tuple[Path, GradingConfig] | None = None) -> None:
    """The `config check` summary: assets, enabled strategies, grid sizes, risk, exchanges, grading, secrets.

    `grading` is (file, GradingConfig) when it was checked.
    """
    console.print(f"[bold green]config OK[/]: {cfg.config_dir}")

    assets = Table(title="assets", title_justify="left")
    for col in ("symbol", "market", "timeframes", "group"):
        assets.add_column(col)
    for a in cfg.assets:
        assets.add_row(a.symbol, a.market, ", ".join(a.timeframes), a.group or "-")
    console.print(assets)

    enabled = cfg.enabled_strategies()
    strategies = Table(title=f"enabled strategies ({len(enabled)} of {len(cfg.strategies)})",
                       title_justify="left")
    for col in ("strategy", "live", "params", "overrides"):
        strategies.add_column(col)
    for name in enabled:
        s = cfg.strategies[name]
        params = " ".join(f"{k}={v}" for k, v in s.params.model_dump().items())
        strategies.add_row(name, "yes" if s.live_eligible else "no", params,
                           ", ".join(s.overrides) or "-")
    console.print(strategies)

    grids = Table(title="parameter grids", title_justify="left")
    grids.add_column("strategy")
    grids.add_column("parameters")
    grids.add_column("combinations", justify="right")
    for name, grid in cfg.param_grids.items():
        grids.add_row(name, ", ".join(grid), str(grid_size(grid)))
    console.print(grids)

    r = cfg.risk
    console.print(f"risk: capital {r.account.initial_capital:g} USDT, leverage {r.account.leverage} "
                  f"(cap {r.limits.leverage_cap}), fees maker {r.fees.maker:g} / taker {r.fees.taker:g}, "
                  f"max {r.limits.max_open_positions} positions, daily loss {r.limits.daily_loss_limit:.1%}, "
                  f"max drawdown {r.limits.max_drawdown:.1%}, flatten on trip: "
                  f"{'yes' if r.kill_switch.flatten_on_trip else 'no'}")
    for name, ex in cfg.exchanges.items():
        console.print(f"exchange {name}: {ex.id} {ex.market_type}, "
                      f"{'sandbox' if ex.sandbox else '[bold red]LIVE[/]'}, uta {'yes' if ex.uta else 'no'}, "
                      f"{ex.margin_mode} margin, {ex.position_mode}, client order prefix {ex.client_order_prefix}")
    if grading is not None:
        console.print(_grading_line(grading[0], grading[1], cfg.config_dir), markup=False)
    chats = len(secrets.telegram_allowed_chat_ids)
    console.print(f"secrets: Bitget keys {'set' if secrets.has_bitget() else 'not set'}, "
                  f"Telegram token {'set' if secrets.has_telegram() else 'not set'} "
                  f"({chats} allowed chat{'s' if chats != 1 else ''})")
