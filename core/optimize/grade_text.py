"""The CLI's text of a walk-forward grade: profile, criteria, binding caps, DSR inputs, bootstrap CI, selection.

`grade_lines(summary)` turns one `WalkForwardResult.summary()` dict (what `radar optimize
--json` prints per symbol) into plain lines. Older summaries (stored before issue 13,
without profile, DSR detail, selection or bootstrap interval) give the lines they can.
Cap lines appear only for caps that changed the grade (`caps_binding`); a summary without
that key falls back to comparing `uncapped_grade` with `grade`.
"""

from __future__ import annotations

from typing import Any, Mapping

_LABELS = {
    "oos_sharpe": ("OOS Sharpe", ".2f"),
    "consistency": ("consistency", ".0%"),
    "oos_is_ratio": ("OOS/IS", ".2f"),
    "dsr": ("DSR", ".3f"),
    "param_stability": ("stability", ".2f"),
    "stability_variance": ("stability variance", ".3f"),
}


def _f(x: Any, spec: str = ".3f") -> str:
    return "-" if x is None else format(x, spec)


def _params(p: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in p.items())


def _caps(s: Mapping[str, Any]) -> list[str]:
    if "caps_binding" in s:
        return list(s["caps_binding"])
    if s.get("uncapped_grade") and s.get("uncapped_grade") != s.get("grade"):
        return list(s.get("caps_applied", []))
    return []


def grade_lines(s: Mapping[str, Any]) -> list[str]:
    """Lines describing one result's grade (see the module docstring)."""
    out: list[str] = []
    profile = s.get("grading_profile") or "?"
    out.append(f"grade {s.get('grade', '?')} ({_f(s.get('score'), '.1f')} points, profile {profile})")
    subs = s.get("sub_scores") or {}
    crit = s.get("criteria") or {}
    parts = []
    for name, (label, spec) in _LABELS.items():
        if name in subs:
            parts.append(f"{label} {_f(crit.get(name), spec)} (sub-score {subs[name]:.2f})")
    if parts:
        out.append("graded on: " + "; ".join(parts))
    for cap in _caps(s):
        out.append(f"cap {cap} (uncapped grade {s.get('uncapped_grade', '?')})")
    d = s.get("dsr_detail") or {}
    if d.get("windows_used"):
        out.append(f"DSR {_f(d.get('dsr'))} = mean over {d['windows_used']} windows of the in-sample choice "
                   f"deflated against that window's {d.get('n_trials')} trials: "
                   f"mean N_eff {_f(d.get('n_eff_mean'), '.1f')}, "
                   f"mean V {_f(d.get('var_sharpes_mean'), '.3g')} (per-day Sharpe²), mean SR0 "
                   f"{_f(d.get('sr0_mean'), '.4f')} per day; OOS record PSR(0) {_f(s.get('psr'))}")
    b = s.get("bootstrap")
    if b:
        out.append(f"bootstrap: per-cycle Sharpe {b['sharpe_per_cycle']:.3f}, {b['ci_level']:.0%} CI "
                   f"[{_f(b.get('ci_low'))}, {_f(b.get('ci_high'))}], p-value {_f(b.get('p_value'))} "
                   f"({b.get('n_cycles')} cycles)")
    sel = s.get("selection") or {}
    if sel:
        chosen = sel.get("chosen", [])
        counts = ", ".join(f"{c['times']}x" for c in chosen)
        out.append(f"selection: {sel.get('distinct_chosen', len(chosen))} distinct combos chosen ({counts})")
        if sel.get("tied"):
            out.append(f"tie: {len(sel['tied'])} combos chosen {chosen[0]['times']}x each, broken by the best "
                       "(lowest) mean OOS rank across the windows (rank 1 = the window's best OOS Sharpe), "
                       "then grid order:")
            for c in chosen[:len(sel["tied"])]:
                out.append(f"  {c['times']}x, mean OOS rank {c['mean_oos_rank']:.1f}: {_params(c['params'])}")
        a = sel.get("applied")
        if a:
            out.append(f"applied combo: chosen {a['times']}x, first in window {a['first_window'] + 1}; judged on the "
                       f"{a['judged_windows']} windows from then: OOS Sharpe {_f(a.get('oos_sharpe'), '.2f')}, "
                       f"consistency {_f(a.get('oos_consistency'), '.0%')}, PSR(0) {_f(a.get('oos_psr'))}")
    return out
