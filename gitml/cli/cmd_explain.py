"""`git ml explain [MODEL] [--row N]`: global SHAP importance (and its shift against the
baseline), or one prediction explained."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from gitml.cli.cmd_check import add_place_args, fmt, report, run_models
from gitml.cli.output import print_json, print_table

if TYPE_CHECKING:
    from gitml.checks.results import ModelResult


def register(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", metavar="MODEL", help="declared model (default: the only one)")
    p.add_argument("--row", type=int, metavar="N",
                   help="explain the prediction for row N (0-based) of the evaluation data")
    p.add_argument("--method", choices=["shap", "lime"], default="shap",
                   help="lime: LIME beside SHAP for one row (needs --row), with their agreement")
    add_place_args(p)


def _row(args: argparse.Namespace) -> int:
    from gitml.checks.explain import explain_row
    from gitml.checks.runner import load
    from gitml.models.spec import one_spec
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    spec = one_spec(repo, args.model)
    cur = load(repo, spec, args.rev, bool(args.staged))
    out = explain_row(cur.model, spec, cur.df, args.row)
    out["model"] = spec.name
    if args.json:
        print_json(out)
        return 0
    if not args.quiet:
        rows = [[c["column"], fmt(c["value"]), f"{c['shap']:+.4f}"] for c in out["contributions"]]
        print(f"{spec.name}: row {out['row']}: predicted {out['prediction']!r} "
              f"(actual {out['actual']!r})")
        print(f"{out['output']} = {out['model_output']:.4f} = base value {out['base_value']:.4f} "
              "+ the contributions below")
        print_table(None, ["column", "value", "SHAP"], rows)
        print(f"explainer: {out['explainer']}; additivity error {out['additivity_error']:.2g}")
    return 0


def _lime_row(args: argparse.Namespace) -> int:
    from gitml.checks.explain import explain_row
    from gitml.checks.lime import agreement, explain_row_lime
    from gitml.checks.runner import load
    from gitml.models.spec import one_spec
    from gitml.repo import MLRepo

    repo = MLRepo.discover()
    spec = one_spec(repo, args.model)
    cur = load(repo, spec, args.rev, bool(args.staged))
    shap_out = explain_row(cur.model, spec, cur.df, args.row)
    lime_out = explain_row_lime(cur.model, spec, cur.df, args.row)
    agree = agreement({c["column"]: c["shap"] for c in shap_out["contributions"]},
                      {c["column"]: c["lime"] for c in lime_out["contributions"]})
    if args.json:
        print_json({"model": spec.name, "row": shap_out["row"], "prediction": shap_out["prediction"],
                    "actual": shap_out["actual"], "shap": shap_out, "lime": lime_out,
                    "agreement": agree})
        return 0
    if not args.quiet:
        shap_c = {c["column"]: c["shap"] for c in shap_out["contributions"]}
        rows = [[c["column"], fmt(c["value"]), f"{shap_c.get(c['column'], 0.0):+.4f}",
                 f"{c['lime']:+.4f}", c["rule"]] for c in lime_out["contributions"]]
        print(f"{spec.name}: row {shap_out['row']}: predicted {shap_out['prediction']!r} "
              f"(actual {shap_out['actual']!r})")
        print_table(f"LIME ({lime_out['output']}, local fit R² {lime_out['score']:.2f}) beside "
                    f"SHAP ({shap_out['output']})", ["column", "value", "SHAP", "LIME", "LIME rule"], rows)
        tau = agree["kendall_tau"]
        print(f"agreement: {len(agree['shared'])} of the top {agree['k']} columns shared "
              f"({', '.join(agree['shared']) or 'none'}); same direction for "
              f"{len(agree['same_sign'])} of them; Kendall tau of |weights| "
              f"{'n/a' if tau is None else f'{tau:.2f}'}")
    return 0


def run(args: argparse.Namespace) -> int:
    if args.method == "lime":
        if args.row is None:
            from gitml.errors import UsageError

            raise UsageError("--method lime explains one prediction", "add --row N")
        return _lime_row(args)
    if args.row is not None:
        return _row(args)
    results = run_models(args, ("explain",), [args.model] if args.model else None)
    return report(args, results, _render)


def _render(res: ModelResult) -> None:
    for g in res.results:
        m = g.metrics
        imp: dict[str, float] = m.get("importance") or {}
        shift = m.get("shift") or {}
        base_imp: dict[str, float] = shift.get("baseline_importance") or {}
        base_rank = {c: i + 1 for i, c in enumerate(base_imp)}
        rows = []
        for i, (col, v) in enumerate(imp.items(), 1):
            row = [str(i), col, f"{v:.4f}"]
            if base_imp:
                row += [fmt(base_imp.get(col)), str(base_rank.get(col, "-"))]
            rows.append(row)
        cols = ["rank", "column", "mean |SHAP|"]
        if base_imp:
            cols += [f"{shift.get('baseline')}", "its rank"]
        print_table(f"{res.model}: global importance ({m.get('explainer')} explainer, "
                    f"{m.get('rows')} rows, output {m.get('output')})", cols, rows)
        if shift:
            print(f"Kendall tau vs {shift.get('baseline')}: {shift.get('kendall_tau'):.3f}; "
                  f"largest top-{shift.get('top_k')} rank move: {shift.get('max_rank_shift')}")
