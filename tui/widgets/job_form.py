"""The new walk-forward job form, the new campaign form (modals) and a yes/no confirmation modal.

`JobForm` dismisses with the job params (`core.jobs.optimize_job.optimize_params` output)
or None on escape; bad input is shown in the form, which stays open. Under "fixed values"
every parameter of the chosen strategy has a field: empty, the walk-forward searches it (its
grid of param_grids.yaml, shown as the placeholder); a number fixes it (the grid of that
parameter becomes that single value; `core.optimize.fixed_params`), checked against the
strategy's rules before the job starts.
`CampaignForm` dismisses with the params of a "campaign" job (`core.jobs.campaign_job`):
strategies × symbols × timeframes, candles from the store or a folder of freqtrade files,
run locally or on Ray.
`ConfirmModal(question)` dismisses with True (y / the Yes button) or False (n, escape).
"""

from __future__ import annotations

import datetime as dt

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from core.errors import RadarError


def _date_ms(text: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    try:
        d = dt.datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=dt.timezone.utc)
    except ValueError:
        raise RadarError(f"date {text!r}: use YYYY-MM-DD (UTC)") from None
    return int(d.timestamp() * 1000)


def _number(name: str, text: str) -> int | float:
    t = text.strip()
    try:
        return int(t)
    except ValueError:
        pass
    try:
        return float(t)
    except ValueError:
        raise RadarError(f"fixed {name}: {text!r} is not a number (leave it empty to search it)") from None


def _strategy_params(strategy: str) -> list[str]:
    from core.strategies import registry

    try:
        return list(registry.create(strategy, {}).params)
    except RadarError:
        return []


def _int(name: str, text: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise RadarError(f"{name} must be a whole number, got {text!r}") from None


class JobForm(ModalScreen):
    """Strategy, symbols (comma separated), market, timeframe, data file (optional: else the
    store; a coarser timeframe than the file's resamples it), date range (optional), IS/OOS/step
    days, max combos, and a fixed value per parameter of the strategy (optional).

    Args:
        defaults: field texts; "fixed": {param: value} pre-fills the fixed values.
        config_dir: the config whose research grids the placeholders show.
    """

    BINDINGS = [Binding("escape", "dismiss_none", "Close without starting"),
                Binding("ctrl+s", "submit", "Start the job")]

    DEFAULT_CSS = """
    JobForm { align: center middle; }
    JobForm > Vertical { width: 76; height: auto; max-height: 100%; border: thick $primary; padding: 0 1;
                         background: $surface; overflow-y: auto; }
    JobForm Horizontal { height: auto; }
    JobForm Label { width: 16; padding: 1 1 0 0; }
    JobForm Input, JobForm Select { width: 1fr; }
    JobForm #form-error { color: $error; height: auto; }
    JobForm #form-buttons { height: auto; align-horizontal: right; }
    JobForm .fixed-title { padding: 1 0 0 0; color: $text-muted; }
    JobForm .fixed-group { height: auto; }
    JobForm .fixed-group Label { width: 20; }
    """

    def __init__(self, strategies: list[str] | None = None, defaults: dict | None = None,
                 config_dir=None) -> None:
        super().__init__()
        if strategies is None:
            from core.strategies import registry
            strategies = registry.names()
        self.strategies = strategies
        self.config_dir = config_dir
        self.defaults = {"strategy": strategies[0] if strategies else "", "symbols": "BTC/USDT",
                         "market": "spot", "timeframe": "1h", "file": "", "start": "", "end": "",
                         "is_days": "180", "oos_days": "60", "step_days": "60", "max_points": "500",
                         **(defaults or {})}

    def _row(self, label: str, widget) -> Horizontal:
        return Horizontal(Label(label), widget)

    def compose(self) -> ComposeResult:
        d = self.defaults
        with Vertical():
            yield Static("New walk-forward job  (ctrl+s start, esc close)", classes="title")
            yield self._row("strategy", Select([(s, s) for s in self.strategies], value=d["strategy"],
                                               allow_blank=False, id="f-strategy"))
            yield self._row("symbols", Input(d["symbols"], placeholder="BTC/USDT, ETH/USDT", id="f-symbols"))
            yield self._row("market", Select([("spot", "spot"), ("futures", "futures")], value=d["market"],
                                             allow_blank=False, id="f-market"))
            yield self._row("timeframe", Input(d["timeframe"], id="f-timeframe"))
            yield self._row("data file", Input(d["file"], placeholder="empty: the candle store", id="f-file"))
            yield self._row("from (UTC)", Input(d["start"], placeholder="YYYY-MM-DD (optional)", id="f-start"))
            yield self._row("to (UTC)", Input(d["end"], placeholder="YYYY-MM-DD (optional)", id="f-end"))
            yield self._row("IS days", Input(d["is_days"], id="f-is"))
            yield self._row("OOS days", Input(d["oos_days"], id="f-oos"))
            yield self._row("step days", Input(d["step_days"], id="f-step"))
            yield self._row("max combos", Input(d["max_points"], id="f-max"))
            yield Static("fixed values (empty: searched over the grid shown)", classes="fixed-title")
            grids = self._grids()
            fixed = d.get("fixed") or {}
            for strat in self.strategies:
                with Vertical(id=f"fix-{strat}", classes="fixed-group") as group:
                    group.display = strat == d["strategy"]
                    for name in _strategy_params(strat):
                        grid = grids.get(strat, {}).get(name)
                        hint = ("grid " + ", ".join(map(str, grid))) if grid else "not in the grid: configured"
                        value = str(fixed.get(name, "")) if strat == d["strategy"] else ""
                        yield self._row(name, Input(value, placeholder=hint, id=f"fix-{strat}-{name}"))
            yield Static("", id="form-error")
            with Horizontal(id="form-buttons"):
                yield Button("Start", id="f-submit", variant="primary")
                yield Button("Cancel", id="f-cancel")

    def _grids(self) -> dict:
        """The research grids of the config (placeholders only; {} when it cannot be read)."""
        from core.paths import DEFAULT_CONFIG_DIR

        try:
            from core.config import load_config

            return dict(load_config(self.config_dir or DEFAULT_CONFIG_DIR).param_grids)
        except Exception:
            return {}

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id != "f-strategy":
            return
        for strat in self.strategies:
            self.query_one(f"#fix-{strat}", Vertical).display = strat == event.value

    def fixed(self) -> dict:
        """The fixed values of the chosen strategy's parameters ({} when all are searched).

        Raises:
            RadarError: a value that is not a number (naming the parameter).
        """
        strat = str(self.query_one("#f-strategy", Select).value)
        out = {}
        for name in _strategy_params(strat):
            text = self.query_one(f"#fix-{strat}-{name}", Input).value
            if text.strip():
                out[name] = _number(name, text)
        return out

    def params(self) -> dict:
        """The job params from the fields.

        Raises:
            RadarError: a field is invalid (the message names it).
        """
        from core.jobs.optimize_job import optimize_params

        v = lambda wid: self.query_one(f"#{wid}", Input).value  # noqa: E731
        market = str(self.query_one("#f-market", Select).value)
        file = v("f-file").strip() or None
        symbols = [s.strip() for s in v("f-symbols").split(",") if s.strip()]
        if file is not None and len(symbols) != 1:
            raise RadarError("a data file holds one symbol: give exactly one symbol with it")
        series = [{"symbol": s, "market": market, "file": file} for s in symbols]
        timeframe = v("f-timeframe").strip()
        if file is not None:                    # a file of finer candles is resampled into the timeframe
            from core.data.freqtrade import parse_file_name

            try:
                own = parse_file_name(file).timeframe
            except RadarError:
                own = None
            if own is not None and own != timeframe:
                series[0]["timeframe"] = own
        return optimize_params(str(self.query_one("#f-strategy", Select).value), timeframe, series,
                               start_ms=_date_ms(v("f-start")), end_ms=_date_ms(v("f-end")),
                               is_days=_int("IS days", v("f-is")), oos_days=_int("OOS days", v("f-oos")),
                               step_days=_int("step days", v("f-step")),
                               max_points=_int("max combos", v("f-max")), fixed=self.fixed(),
                               **({"config_dir": self.config_dir} if self.config_dir else {}))

    def action_submit(self) -> None:
        try:
            p = self.params()
        except RadarError as exc:
            self.query_one("#form-error", Static).update(f"ERROR: {exc}")
            return
        self.dismiss(p)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "f-submit":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()


def data_folder_series(folder: str, symbols: list[str], market: str, timeframes: list[str]) -> dict[str, list[dict]]:
    """{timeframe: [{"symbol", "market", "file"}]} of a campaign whose candles come from a folder of
    freqtrade files (`BTC_USDT-1h.json.gz`, `BTC_USDT_USDT-5m-futures.json.gz`): per symbol and
    timeframe the file of that symbol, market and timeframe, else the finest file of the symbol
    that resamples into it (its own timeframe kept in "timeframe").

    Raises:
        RadarError: the folder does not exist, or a symbol has no usable file there (naming both).
    """
    from pathlib import Path

    from core.data.aggregate import check_resample
    from core.data.freqtrade import parse_file_name
    from core.data.timeframes import timeframe_ms

    root = Path(folder).expanduser()
    if not root.is_dir():
        raise RadarError(f"data folder {folder!r} is not a folder")
    found: dict[tuple[str, str], dict[str, str]] = {}
    for path in sorted(root.iterdir()):
        try:
            spec = parse_file_name(path)
        except RadarError:
            continue
        if spec.kind == "candles" and spec.market == market:
            found.setdefault((spec.symbol, spec.market), {})[spec.timeframe] = str(path)
    out: dict[str, list[dict]] = {}
    for tf in timeframes:
        rows = []
        for sym in symbols:
            files = found.get((sym, market), {})
            if tf in files:
                rows.append({"symbol": sym, "market": market, "file": files[tf]})
                continue
            finer = []
            for own, path in files.items():
                try:
                    check_resample(own, tf)
                except RadarError:
                    continue
                finer.append((timeframe_ms(own), own, path))
            if not finer:
                raise RadarError(f"data folder {root}: no {market} {tf} candle file of {sym} (nor a finer one)")
            _ms, own, path = max(finer)
            rows.append({"symbol": sym, "market": market, "file": path, "timeframe": own})
        out[tf] = rows
    return out


class CampaignForm(ModalScreen):
    """A research campaign (`core.jobs.campaign_job`): strategies, symbols and timeframes (comma
    separated), market, the candles (empty: the store; or a folder of freqtrade files), date range,
    IS/OOS/step days, max combos, and where it runs (local: the job's process; ray: a Ray cluster,
    "auto" or host:port). Dismisses with the job params (`check_campaign_params` output) or None
    on escape; bad input is shown in the form, which stays open."""

    BINDINGS = [Binding("escape", "dismiss_none", "Close without starting"),
                Binding("ctrl+s", "submit", "Start the campaign")]

    DEFAULT_CSS = """
    CampaignForm { align: center middle; }
    CampaignForm > Vertical { width: 84; height: auto; max-height: 100%; border: thick $primary; padding: 0 1;
                              background: $surface; overflow-y: auto; }
    CampaignForm Horizontal { height: auto; }
    CampaignForm Label { width: 16; padding: 1 1 0 0; }
    CampaignForm Input, CampaignForm Select { width: 1fr; }
    CampaignForm #c-error { color: $error; height: auto; }
    CampaignForm #c-buttons { height: auto; align-horizontal: right; }
    """

    def __init__(self, defaults: dict | None = None, config_dir=None) -> None:
        super().__init__()
        self.config_dir = config_dir
        self.defaults = {"strategies": "envelope_dca, envelope_dca_short", "symbols": "BTC/USDT, ETH/USDT",
                         "market": "spot", "timeframes": "1h", "folder": "", "start": "", "end": "",
                         "is_days": "180", "oos_days": "60", "step_days": "60", "max_points": "500",
                         "backend": "local", "ray_address": "auto", **(defaults or {})}

    def compose(self) -> ComposeResult:
        d = self.defaults
        row = lambda label, w: Horizontal(Label(label), w)  # noqa: E731
        with Vertical():
            yield Static("New research campaign: strategies × symbols × timeframes  (ctrl+s start, esc close)")
            yield row("strategies", Input(d["strategies"], placeholder="envelope_dca, momentum", id="c-strategies"))
            yield row("symbols", Input(d["symbols"], placeholder="BTC/USDT, ETH/USDT", id="c-symbols"))
            yield row("market", Select([("spot", "spot"), ("futures", "futures")], value=d["market"],
                                       allow_blank=False, id="c-market"))
            yield row("timeframes", Input(d["timeframes"], placeholder="1h, 4h", id="c-timeframes"))
            yield row("data folder", Input(d["folder"], placeholder="empty: the candle store", id="c-folder"))
            yield row("from (UTC)", Input(d["start"], placeholder="YYYY-MM-DD (optional)", id="c-start"))
            yield row("to (UTC)", Input(d["end"], placeholder="YYYY-MM-DD (optional)", id="c-end"))
            yield row("IS days", Input(d["is_days"], id="c-is"))
            yield row("OOS days", Input(d["oos_days"], id="c-oos"))
            yield row("step days", Input(d["step_days"], id="c-step"))
            yield row("max combos", Input(d["max_points"], id="c-max"))
            yield row("runs on", Select([("local (the job's process)", "local"), ("ray", "ray")],
                                        value=d["backend"], allow_blank=False, id="c-backend"))
            yield row("ray address", Input(d["ray_address"], placeholder="auto or host:port", id="c-ray"))
            yield Static("", id="c-error")
            with Horizontal(id="c-buttons"):
                yield Button("Start", id="c-submit", variant="primary")
                yield Button("Cancel", id="c-cancel")

    def params(self) -> dict:
        """The campaign job params from the fields.

        Raises:
            RadarError: a field is invalid (the message names it).
        """
        from core.jobs.campaign_job import campaign_job_params, check_campaign_params
        from core.optimize.campaign import CampaignPlan, campaign_params

        v = lambda wid: self.query_one(f"#{wid}", Input).value  # noqa: E731
        split = lambda text: [x.strip() for x in text.split(",") if x.strip()]  # noqa: E731
        strategies, symbols, timeframes = split(v("c-strategies")), split(v("c-symbols")), split(v("c-timeframes"))
        market = str(self.query_one("#c-market", Select).value)
        backend = str(self.query_one("#c-backend", Select).value)
        ray_address = v("c-ray").strip() or "auto"
        kw = {"start_ms": _date_ms(v("c-start")), "end_ms": _date_ms(v("c-end")),
              "is_days": _int("IS days", v("c-is")), "oos_days": _int("OOS days", v("c-oos")),
              "step_days": _int("step days", v("c-step")), "max_points": _int("max combos", v("c-max")),
              **({"config_dir": str(self.config_dir)} if self.config_dir else {})}
        if not symbols:
            raise RadarError("symbols: give at least one symbol")
        if not timeframes:
            raise RadarError("timeframes: give at least one timeframe, e.g. 1h")
        folder = v("c-folder").strip()
        if not folder:
            return campaign_job_params(strategies, symbols, timeframes, market=market, backend=backend,
                                       ray_address=ray_address, **kw)
        series = data_folder_series(folder, symbols, market, timeframes)
        plan = CampaignPlan.build(strategies, series, timeframes, **kw)
        return check_campaign_params(campaign_params(plan, backend=backend,
                                                     ray_address=ray_address if backend == "ray" else None))

    def action_submit(self) -> None:
        try:
            p = self.params()
        except RadarError as exc:
            self.query_one("#c-error", Static).update(f"ERROR: {exc}")
            return
        self.dismiss(p)

    def action_dismiss_none(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "c-submit":
            self.action_submit()
        else:
            self.dismiss(None)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_submit()


class ConfirmModal(ModalScreen[bool]):
    """Ask a yes/no question naming what will happen; y confirms, n or escape declines."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n", "answer(False)", "No"),
                Binding("escape", "answer(False)", "No")]

    DEFAULT_CSS = """
    ConfirmModal { align: center middle; }
    ConfirmModal > Vertical { width: 60; height: auto; border: thick $warning; padding: 1 2; background: $surface; }
    ConfirmModal Horizontal { height: auto; align-horizontal: right; }
    """

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)
            yield Static("[y] yes   [n] no", markup=False)
            with Horizontal():
                yield Button("Yes", id="yes", variant="warning")
                yield Button("No", id="no")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(bool(yes))

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")
