"""Jobs screen: research jobs with progress; `n` new walk-forward job, `m` new research campaign,
`c` cancel, `o`/enter results.

* The JobManager runs jobs in its threads and calls our subscriber on the event loop; the
  subscriber only posts a `JobUpdate` message, whose handler updates the job's row by key
  (changed cells only; the table is never cleared, so cursor and scroll stay).
* Database reads (job list, results, combos) run in thread workers; their results come
  back through `call_from_thread`.
* A finished job opens `ResultsScreen`: grade, score and the five criteria, the top 10 combos
  by OOS Sharpe, and a heatmap of OOS Sharpe over two parameters (`x` / `y` pick them). A job
  with several results (a campaign: strategies × symbols × timeframes) also shows the ranking
  of every run by grade with its criteria (`core.optimize.campaign.rank_runs`); enter on a row
  (or `s`) shows that run.
* A campaign (`m`, `tui.widgets.job_form.CampaignForm`) is a "campaign" job
  (`core.jobs.campaign_job`) submitted through the engine port like a walk-forward; its
  progress streams into the same row (window column: runs finished / runs; detail: the run
  and its window).

* The table fits the terminal (`job_columns`): the detail column gets the width left and is
  cut with an ellipsis; below 120 columns the phase and window columns are left out and the
  progress bar is shorter.
* `?` on the results view shows the results view's keys (`ResultsScreen.ACTIONS`).

The manager comes from the constructor, else the app's `jobs` attribute.
"""

from __future__ import annotations

import math
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from rich.text import Text
from textual.widgets import DataTable, Static

from core.jobs.model import DONE, TERMINAL, JobEvent, JobRecord
from core.errors import RadarError
from tui.actions import Action
from tui.widgets.heatmap import Heatmap, numeric_params
from tui.widgets.job_form import CampaignForm, ConfirmModal, JobForm

from tui.screens.base import RadarScreen

COLUMNS = (("id", "id"), ("what", "job"), ("state", "state"), ("progress", "progress"), ("phase", "phase"),
           ("window", "window"), ("eta", "ETA"), ("detail", "detail"))
BAR = 12
#: the progress bar below `WIDE` columns
SHORT_BAR = 6
#: from this terminal width every column shows
WIDE = 120
#: content width of the fixed columns at (wide, narrow) widths; the detail gets the rest
WIDTHS = {"id": (4, 4), "what": (30, 24), "state": (9, 9), "progress": (BAR + 7, SHORT_BAR + 7), "phase": (10, 0),
          "window": (7, 0), "eta": (6, 6)}
#: the narrowest detail column
MIN_DETAIL = 8


def progress_bar(percent: float, bar: int = BAR) -> str:
    """A text bar with the percent printed: "[#####-------]  42%"."""
    p = max(0.0, min(100.0, percent or 0.0))
    n = int(round(p / 100 * bar))
    return f"[{'#' * n}{'-' * (bar - n)}] {p:3.0f}%"


def job_columns(width: int) -> tuple[tuple[str, str, int], ...]:
    """(key, label, content width) of the Jobs table's columns at a terminal `width`: the
    phase and window columns only from `WIDE` up; the detail column gets the width left (one
    cell of padding a side per column, two cells kept for the scroll bar)."""
    wide = width >= WIDE
    keys = [k for k, _ in COLUMNS if k == "detail" or WIDTHS[k][0 if wide else 1]]
    fixed = sum(WIDTHS[k][0 if wide else 1] for k in keys if k != "detail")
    detail = max(MIN_DETAIL, width - 2 - fixed - 2 * len(keys))
    labels = dict(COLUMNS)
    return tuple((k, labels[k], detail if k == "detail" else WIDTHS[k][0 if wide else 1]) for k in keys)


def _one_line(value: str) -> Text:
    """A cell kept on one line, cut with an ellipsis to its column (plain text, no markup)."""
    return Text(value, no_wrap=True, overflow="ellipsis", end="")


def fmt_eta(eta: float | None) -> str:
    if eta is None or not math.isfinite(eta):
        return "—"
    s = int(round(eta))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def job_title(params: dict) -> str:
    """The job column's text: "envelope_dca BTC/USDT,ETH/USDT 1h", or a campaign's title."""
    if "plan" in params:
        from core.jobs.campaign_job import campaign_title

        return campaign_title(params)
    syms = ",".join(s.get("symbol", "?") for s in params.get("series") or [])
    return f"{params.get('strategy', '?')} {syms} {params.get('timeframe', '')}".strip()


class JobsScreen(RadarScreen):
    """See the module docstring."""

    ACTIONS = (
        Action("new-job", "n", "New walk-forward job (form)", "new_job"),
        Action("new-campaign", "m", "New research campaign: strategies × symbols × timeframes (form)",
               "new_campaign"),
        Action("cancel-job", "c", "Cancel the selected job (asks first)", "cancel_job", destructive=True),
        Action("results", "o", "Open the selected finished job's results", "open_results", readonly_ok=True),
    )
    SCREEN_NUMBER = 5
    SCREEN_TITLE = "Jobs"

    DEFAULT_CSS = """
    JobsScreen #jobs-help { height: 1; padding: 0 1; }
    JobsScreen DataTable { height: 1fr; }
    """

    class JobUpdate(Message):
        def __init__(self, event: JobEvent) -> None:
            super().__init__()
            self.event = event

    class JobsLoaded(Message):
        def __init__(self, records: list[JobRecord]) -> None:
            super().__init__()
            self.records = records

    def __init__(self, manager: Any = None, *, form_defaults: dict | None = None,
                 campaign_defaults: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.manager = manager
        self.form_defaults = form_defaults
        self.campaign_defaults = campaign_defaults
        self.jobs: dict[int, dict] = {}          # id -> {"title", "state", "params"}
        self._unsubscribe = None
        self._cells: dict[int, dict[str, str]] = {}   # id -> every column's text, shown or not
        self._percent: dict[int, float] = {}
        self._columns: tuple[tuple[str, str, int], ...] = ()

    def compose(self) -> ComposeResult:
        yield Static("n new job   m new campaign   c cancel   o/enter results", id="jobs-help")
        yield DataTable(id="jobs-table", cursor_type="row")

    def _add_columns(self, t: DataTable, width: int) -> None:
        self._columns = job_columns(width)
        for key, label, w in self._columns:
            t.add_column(label, key=key, width=w)

    def on_resize(self) -> None:
        if not self._columns or job_columns(self.size.width) == self._columns:
            return
        t = self.query_one(DataTable)
        keys = [rk.value for rk in t.rows]
        cursor = self.selected_job()
        t.clear(columns=True)
        self._add_columns(t, self.size.width)
        for key in keys:
            self._set_row(int(key), {})
        if cursor is not None:
            t.move_cursor(row=t.get_row_index(str(cursor)), animate=False)

    def on_mount(self) -> None:
        t = self.query_one(DataTable)
        self._add_columns(t, self.app.size.width)
        if self.manager is None:
            self.manager = getattr(self.app, "jobs", None)
        if self.manager is not None:
            self._unsubscribe = self.manager.subscribe(lambda ev: self.post_message(self.JobUpdate(ev)))
            self.run_worker(self._load, thread=True, exclusive=True, group="jobs-load")

    def on_unmount(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()

    def _load(self) -> None:
        try:
            recs = self.manager.jobs(50)
        except RadarError:
            return
        self.post_message(self.JobsLoaded(recs))

    # ---------------------------------------------------------------- rows
    def _shown(self, job_id: int) -> dict[str, Any]:
        """The cells of job `job_id` for the columns shown now."""
        cells = self._cells.get(job_id, {})
        short = {k: w for k, _, w in self._columns}.get("progress") != WIDTHS["progress"][0]
        out: dict[str, Any] = {}
        for key, _, _ in self._columns:
            v = cells.get(key, "")
            if key == "progress" and short and job_id in self._percent:
                v = progress_bar(self._percent[job_id], SHORT_BAR)
            out[key] = _one_line(v)                 # never read as markup: "[####---]" is a bar
        return out

    def _set_row(self, job_id: int, cells: dict[str, str], percent: float | None = None) -> None:
        self._cells.setdefault(job_id, {}).update(cells)
        if percent is not None:
            self._percent[job_id] = percent
        t = self.query_one(DataTable)
        key = str(job_id)
        shown = self._shown(job_id)
        if key in t.rows:
            for col, v in shown.items():
                if t.get_cell(key, col) != v:
                    t.update_cell(key, col, v)
        else:
            t.add_row(*shown.values(), key=key)

    def on_jobs_screen_jobs_loaded(self, msg: "JobsScreen.JobsLoaded") -> None:
        for r in reversed(msg.records):
            info = self.jobs.setdefault(r.id, {})
            if info.get("from_event"):
                continue
            info.update(title=job_title(r.params), state=r.state, params=r.params, result=r.result)
            self._set_row(r.id, {"id": str(r.id), "what": info["title"], "state": r.state.upper(),
                                 "progress": progress_bar(r.progress), "phase": r.phase or "",
                                 "window": "", "eta": "—", "detail": r.error or ""}, r.progress)

    def on_jobs_screen_job_update(self, msg: "JobsScreen.JobUpdate") -> None:
        ev = msg.event
        info = self.jobs.setdefault(ev.job_id, {"title": f"{ev.kind} #{ev.job_id}"})
        info["state"] = ev.state
        info["from_event"] = True
        cells = {"id": str(ev.job_id), "what": info["title"], "state": ev.state.upper(),
                 "progress": progress_bar(ev.percent), "phase": ev.phase,
                 "window": f"{ev.window}/{ev.n_windows}" if ev.n_windows else "",
                 "eta": fmt_eta(ev.eta_s), "detail": ev.error or ev.detail}
        self._set_row(ev.job_id, cells, ev.percent)

    def selected_job(self) -> int | None:
        t = self.query_one(DataTable)
        if not t.row_count:
            return None
        key = t.coordinate_to_cell_key(t.cursor_coordinate).row_key.value
        return int(key)

    # ---------------------------------------------------------------- actions
    def action_new_job(self) -> None:
        if self.manager is None:
            self.notify("no job manager in this session", severity="error")
            return

        def submitted(params: dict | None) -> None:
            if params is not None:
                self.run_worker(self._submit(params), name="job-submit", group="job-submit")

        self.app.push_screen(JobForm(defaults=self.form_defaults), submitted)

    def action_new_campaign(self) -> None:
        if self.manager is None:
            self.notify("no job manager in this session", severity="error")
            return

        def submitted(params: dict | None) -> None:
            if params is not None:
                self.run_worker(self._submit(params, "campaign"), name="job-submit", group="job-submit")

        self.app.push_screen(CampaignForm(defaults=self.campaign_defaults,
                                          config_dir=getattr(self.app, "config_dir", None)), submitted)

    def _port(self) -> Any:
        port = getattr(self.app, "api", None)
        if port is None or not hasattr(port, "job_submit"):
            raise RadarError("no engine port in this console")
        return port

    def _actor(self) -> str:
        return str(getattr(self.app, "actor", "console"))

    async def _submit(self, params: dict, kind: str = "optimize") -> None:
        """Submit the job (`kind` "optimize" or "campaign") through the engine port (audited by the
        engine; an attached console's goes over the socket)."""
        try:
            res = await self._port().job_submit(self._actor(), kind, params)
        except RadarError as exc:
            self.notify(f"job refused: {exc}", severity="error")
            return
        job_id = int(res["id"])
        self.jobs.setdefault(job_id, {})["title"] = job_title(params)
        self.jobs[job_id]["params"] = params
        self._set_row(job_id, {"id": str(job_id), "what": job_title(params)})
        t = self.query_one(DataTable)
        t.move_cursor(row=t.get_row_index(str(job_id)))

    def action_cancel_job(self, confirmed: bool = False) -> None:
        job_id = self.selected_job()
        if job_id is None or self.manager is None:
            return
        info = self.jobs.get(job_id, {})
        if info.get("state") in TERMINAL:
            self.notify(f"job {job_id} is already {info['state']}")
            return
        # the console app confirms destructive actions itself (run_registered); a bare host does not
        if confirmed or getattr(self.app, "run_registered", None) is not None:
            self.run_worker(self._cancel(job_id), name="job-cancel", group="job-cancel")
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self._cancel(job_id), name="job-cancel", group="job-cancel")

        self.app.push_screen(ConfirmModal(f"Cancel job {job_id} ({info.get('title', '')})? Completed windows are "
                                          "kept as a partial result."), answered)

    async def _cancel(self, job_id: int) -> None:
        """Cancel the job through the engine port (audited); a refusal is a toast."""
        try:
            res = await self._port().job_cancel(self._actor(), job_id)
        except RadarError as exc:
            self.notify(f"cancel refused: {exc}", severity="error")
            return
        self.notify(f"job {job_id}: {res.get('state', 'cancelling')}", timeout=4)

    def confirm_text(self, action: Action) -> str:
        if action.name == "cancel-job":
            job_id = self.selected_job()
            if job_id is not None:
                return (f"Cancel job {job_id} ({self.jobs.get(job_id, {}).get('title', '')})? Completed windows "
                        "are kept as a partial result.")
        return action.description

    def action_open_results(self) -> None:
        job_id = self.selected_job()
        if job_id is None:
            return
        if self.jobs.get(job_id, {}).get("state") != DONE:
            self.notify(f"job {job_id} has no results (state {self.jobs.get(job_id, {}).get('state', '?')})")
            return
        self.app.push_screen(ResultsScreen(self.manager, job_id))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open_results()


def _fmt(v: Any, spec: str) -> str:
    """A criterion's cell: "-" when missing or not finite."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return format(v, spec)


class ResultsScreen(Screen):
    """A finished job's results (module docstring); `s` next symbol, `x` / `y` heatmap axes,
    `a` apply the shown result.

    Apply (`a`, asks first, naming the strategy, the symbol it goes to, the params and the
    grade): writes the best params into `<config_dir>/strategies.yaml` as `radar optimize
    --apply` does (`core.optimize.apply.apply_stored`: grade at least C, complete, backup kept).
    The symbol: the result's when it is in assets.yaml, else the only asset of its pair (a spot
    result goes to its perpetual, BTC/USDT -> BTC/USDT:USDT, said in the question); else
    refused. Then, when the engine runs that strategy on that symbol, `apply_params` is sent
    through the app's port (audited): "applied now" / "pending until flat" / its refusal. A
    read-only console refuses. `config_dir`: the argument, else the app's `config_dir`, else the
    packaged config.
    """

    SCREEN_TITLE = "Job results"
    #: its keys, for the app's `?` help and `:` palette (the bindings are built from them)
    ACTIONS = (
        Action("heatmap-x", "x", "Heatmap: the next parameter across", "axis(0)", readonly_ok=True),
        Action("heatmap-y", "y", "Heatmap: the next parameter down", "axis(1)", readonly_ok=True),
        Action("next-result", "s", "Show the next symbol's result of this job", "next_result", readonly_ok=True),
        Action("apply-result", "a", "Apply the shown result's best params (strategies.yaml + the running "
               "engine; asks first)", "apply_result", destructive=True),
        Action("close", "escape", "Back to the Jobs screen", "close", readonly_ok=True),
    )
    BINDINGS = [Binding(a.key, a.method, a.description) for a in ACTIONS]

    DEFAULT_CSS = """
    ResultsScreen #res-head { height: auto; padding: 0 1; border-bottom: solid $primary; }
    ResultsScreen #res-ranking { height: auto; max-height: 12; }
    ResultsScreen #res-combos { height: 13; }
    ResultsScreen #res-heat { height: auto; }
    ResultsScreen #res-apply { height: auto; padding: 0 1; }
    """

    class Loaded(Message):
        def __init__(self, results: list[tuple[dict, list[dict]]]) -> None:
            super().__init__()
            self.results = results

    def __init__(self, manager: Any, job_id: int, config_dir: Any = None) -> None:
        super().__init__()
        self.manager = manager
        self.job_id = job_id
        self.config_dir = config_dir
        #: the outcome of the last apply, one line ("" before any)
        self.apply_outcome = ""
        self.results: list[tuple[dict, list[dict]]] = []
        self.index = 0
        self.params: list[str] = []
        self.axes = [0, 1]

    def compose(self) -> ComposeResult:
        yield Static(f"loading the results of job {self.job_id}…", id="res-head")
        yield DataTable(id="res-ranking", cursor_type="row")
        yield Static("", id="res-apply")
        yield DataTable(id="res-combos", cursor_type="row")
        yield Heatmap(id="res-heat")

    def on_mount(self) -> None:
        self.run_worker(self._load(), name="job-results", group="job-results")

    async def _load(self) -> None:
        """Read the job's stored results through the engine port (`job_results`), never the database."""
        port = getattr(self.app, "api", None)
        try:
            rows = await port.job_results(self.job_id) if port is not None else []
        except RadarError as exc:
            self.query_one("#res-head", Static).update(f"job {self.job_id}: results not available: {exc}")
            return
        self.post_message(self.Loaded([(r["result"], r["combos"]) for r in rows]))

    def on_results_screen_loaded(self, msg: "ResultsScreen.Loaded") -> None:
        self.results = msg.results
        self._ranking()
        self._show()

    #: the ranking table's columns: (label, criteria key or None, format)
    RANK_COLUMNS = (("OOS Sharpe", "oos_sharpe", ".2f"), ("consistency", "consistency", ".0%"),
                    ("OOS/IS", "oos_is_ratio", ".2f"), ("DSR", "dsr", ".3f"), ("stability", "param_stability", ".2f"))

    def ranking(self) -> list[tuple[int, dict]]:
        """(index into `results`, result) of every result best first (`rank_runs`: grade, score,
        OOS Sharpe, then the loaded order)."""
        from core.optimize.campaign import rank_runs

        rows = [{**r, "_i": i} for i, (r, _c) in enumerate(self.results)]
        return [(r["_i"], self.results[r["_i"]][0]) for r in rank_runs(rows, order_key="_i")]

    def _ranking(self) -> None:
        """The ranking of every run with its criteria; shown only when the job has several results."""
        t = self.query_one("#res-ranking", DataTable)
        t.clear(columns=True)
        t.display = len(self.results) > 1
        if len(self.results) < 2:
            return
        t.add_columns("rank", "strategy", "symbol", "tf", "grade", "score", *(c for c, _, _ in self.RANK_COLUMNS))
        for rank, (i, r) in enumerate(self.ranking(), 1):
            k = r.get("criteria") or {}
            cells = [_fmt(k.get(key), f) for _, key, f in self.RANK_COLUMNS]
            t.add_row(str(rank), r["strategy"], r["symbol"], r["timeframe"], r["grade"], f"{r['score']:.1f}", *cells,
                      key=str(i))

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        if event.data_table.id == "res-ranking" and event.row_key.value is not None:
            self.index = int(event.row_key.value)
            self._show()

    def _show(self) -> None:
        head = self.query_one("#res-head", Static)
        if not self.results:
            head.update(f"job {self.job_id}: no stored results")
            return
        res, combos = self.results[self.index]
        c = res["criteria"]
        head.update(
            f"job {self.job_id}  {res['strategy']} {res['symbol']} {res['timeframe']}  "
            f"[{self.index + 1}/{len(self.results)}, s next]\n"
            f"GRADE {res['grade']}  score {res['score']:.2f}  windows {res['windows']}  "
            f"combos {res['combos_evaluated']}\n"
            f"OOS Sharpe {c['oos_sharpe']:.3f} | consistency {c['consistency']:.3f} | OOS/IS {c['oos_is_ratio']:.3f} | "
            f"DSR {c['dsr']:.3f} | param stability {c['param_stability']:.3f}\n"
            f"best params {res['best_params']}")
        t = self.query_one("#res-combos", DataTable)
        t.clear(columns=True)
        names = sorted({k for cb in combos for k in cb["params"]})
        t.add_columns("#", *names, "OOS Sharpe", "IS Sharpe", "OOS return", "cycles", "picked")
        top = sorted(combos, key=lambda cb: -(cb["oos_sharpe"] if math.isfinite(cb["oos_sharpe"]) else -1e18))[:10]
        for i, cb in enumerate(top, 1):
            t.add_row(str(i), *(f"{cb['params'].get(n, '')}" for n in names), f"{cb['oos_sharpe']:.3f}",
                      f"{cb['is_sharpe']:.3f}", f"{cb['oos_return']:+.2%}", str(cb["oos_cycles"]),
                      str(cb["times_selected"]), key=str(cb["combo"]))
        self.params = numeric_params(combos)
        self._heat()

    def _heat(self) -> None:
        hm = self.query_one(Heatmap)
        if not self.results:
            return
        combos = self.results[self.index][1]
        if len(self.params) < 2:
            hm.show(combos, None, None)
            return
        x, y = (self.params[i % len(self.params)] for i in self.axes)
        hm.show(combos, x, y)

    def action_axis(self, which: int) -> None:
        if len(self.params) < 2:
            return
        other = self.axes[1 - which]
        nxt = (self.axes[which] + 1) % len(self.params)
        if nxt == other % len(self.params):
            nxt = (nxt + 1) % len(self.params)
        self.axes[which] = nxt
        self._heat()

    def find_action(self, name: str) -> Action | None:
        """The action named `name` of this view (the app's palette runs it)."""
        return next((a for a in self.ACTIONS if a.name == name), None)

    def action_close(self) -> None:
        self.app.pop_screen()

    def action_next_result(self) -> None:
        if self.results:
            self.index = (self.index + 1) % len(self.results)
            self._show()

    # ---------------------------------------------------------------- apply
    def _config_dir(self) -> Any:
        from core.paths import DEFAULT_CONFIG_DIR

        return self.config_dir or getattr(self.app, "config_dir", None) or DEFAULT_CONFIG_DIR

    def _said(self, text: str, severity: str = "information") -> None:
        self.apply_outcome = text
        self.query_one("#res-apply", Static).update(Text(text))
        self.notify(text, severity=severity, timeout=8)

    def apply_question(self) -> tuple[str, str] | None:
        """(the confirmation question, the symbol the shown result goes to), or None after saying
        why it cannot be applied (no result, or no asset of its pair in assets.yaml)."""
        from core.optimize.apply import default_target

        if not self.results:
            self._said("no result to apply", "warning")
            return None
        res = self.results[self.index][0]
        try:
            target = default_target(self._config_dir(), res["symbol"])
        except RadarError as exc:
            self._said(f"not applied: {exc}", "error")
            return None
        if target is None:
            self._said(f"not applied: neither {res['symbol']} nor a single asset of its pair is in assets.yaml; "
                       f"apply it explicitly with `radar optimize --apply {res['id']} --to SYMBOL`", "error")
            return None
        params = ", ".join(f"{k}={v}" for k, v in res["best_params"].items())
        where = target if target == res["symbol"] else f"{target} (a {res['symbol']} result, to its perpetual)"
        question = (f"Apply {res['strategy']} on {where}: {params}?\n"
                    f"Result {res['id']} ({res['timeframe']}), GRADE {res['grade']} (score {res['score']:.1f}). "
                    "Writes strategies.yaml (backup kept) and sends the params to the running engine.")
        return question, target

    def action_apply_result(self) -> None:
        if getattr(self.app, "readonly", False) or getattr(getattr(self.app, "api", None), "readonly", False):
            self._said("read-only console: apply-result is disabled", "warning")
            return
        asked = self.apply_question()
        if asked is None:
            return
        question, target = asked
        res = self.results[self.index][0]

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_worker(self.apply_shown(res, target), name="apply-result", group="apply-result")
            else:
                self._said("apply-result: cancelled, nothing done")

        self.app.push_screen(ConfirmModal(question), answered)

    async def apply_shown(self, res: dict, target: str) -> str:
        """Write strategies.yaml, then tell the engine through the port; returns the outcome line."""
        import asyncio

        from core.api.protocol import CommandRefused
        from core.optimize.apply import apply_stored

        to = target if target != res["symbol"] else None
        try:
            done = await asyncio.to_thread(apply_stored, res, self._config_dir(), to_symbol=to)
        except RadarError as exc:
            self._said(f"not applied: {exc}", "error")
            return self.apply_outcome
        wrote = f"wrote {done.strategy} override for {done.symbol} into {done.path} (backup {done.backup.name})"
        port = getattr(self.app, "api", None)
        runner = None
        if port is not None and hasattr(port, "apply_params"):
            try:
                runner = port.snapshot().runner(done.symbol, done.strategy)
            except Exception as exc:            # noqa: BLE001 - an unreachable engine: not told, said so
                self._said(f"{wrote}; the engine was NOT told (its state could not be read: {exc})", "error")
                return self.apply_outcome
        if runner is None:
            self._said(f"{wrote}; the engine does not run {done.strategy} on {done.symbol}: read at its next start")
            return self.apply_outcome
        actor = str(getattr(self.app, "actor", "console"))
        try:
            ans = await port.apply_params(actor, done.symbol, dict(done.params), done.strategy)
        except (CommandRefused, RadarError) as exc:
            self._said(f"{wrote}; the engine REFUSED the params: {exc}", "error")
            return self.apply_outcome
        said = {"applied": "applied now", "pending": "pending until flat",
                "unchanged": "unchanged (it trades these params already)"}.get(ans.get("state"), str(ans.get("state")))
        self._said(f"{wrote}; engine: {said}")
        return self.apply_outcome

