"""The validation report as one self-contained HTML file with plotly charts.

plotly.js comes from the installed plotly package and is inlined, so the file opens in a browser with
no network. Charts: cumulative CORR and MMC per era, CORR drawdown, per-era CORR bars, max feature
exposure per era, and the simulated stake; plus the summary table.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from numerflow.fileio import atomic_write_text
from numerflow.metrics import drawdown
from numerflow.report.scoring import ValidationScores

if TYPE_CHECKING:
    import plotly.graph_objects as go

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { font-size: 1.4rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table.summary { border-collapse: collapse; font-size: 0.85rem; }
table.summary th, table.summary td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
table.summary th { background: #f3f3f3; }
ul.notes { color: #555; font-size: 0.85rem; }
"""


def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def _figure_html(fig: go.Figure, div_id: str) -> str:
    import plotly.io as pio

    return pio.to_html(fig, include_plotlyjs=False, full_html=False, div_id=div_id, default_height=380)


def _line_figure(
    title: str, eras: np.ndarray, columns: list[str], values: np.ndarray, y_title: str
) -> go.Figure:
    import plotly.graph_objects as go

    fig = go.Figure()
    for j, col in enumerate(columns):
        fig.add_trace(go.Scatter(x=list(eras), y=values[:, j].tolist(), mode="lines", name=col))
    fig.update_layout(title=title, xaxis_title="era", yaxis_title=y_title, margin={"t": 50, "b": 40})
    return fig


def _cumsum(per_era: np.ndarray) -> np.ndarray:
    return np.cumsum(np.nan_to_num(per_era, nan=0.0), axis=0)


def _charts(scores: ValidationScores) -> list[tuple[str, go.Figure]]:
    import plotly.graph_objects as go

    eras, cols, pe = scores.eras, scores.columns, scores.per_era
    charts: list[tuple[str, object]] = []
    cum = _line_figure("Cumulative CORR", eras, cols, _cumsum(pe["corr"]), "cumulative CORR")
    if "mmc" in pe:
        for j, col in enumerate(cols):
            cum.add_trace(
                go.Scatter(
                    x=list(eras), y=_cumsum(pe["mmc"])[:, j].tolist(), name=f"{col} MMC", line={"dash": "dot"}
                )
            )
        cum.update_layout(title="Cumulative CORR and MMC (dotted)")
    charts.append(("cumulative", cum))
    below = -drawdown(np.nan_to_num(pe["corr"], nan=0.0))
    charts.append(("drawdown", _line_figure("CORR drawdown", eras, cols, below, "drawdown")))
    bars = go.Figure()
    for j, col in enumerate(cols):
        bars.add_trace(go.Bar(x=list(eras), y=pe["corr"][:, j].tolist(), name=col))
    bars.update_layout(title="CORR per era", xaxis_title="era", yaxis_title="CORR", barmode="group")
    charts.append(("per-era", bars))
    if "max_feature_exposure" in pe:
        charts.append(
            (
                "exposure",
                _line_figure(
                    "Max feature exposure per era", eras, cols, pe["max_feature_exposure"], "max |corr|"
                ),
            )
        )
    if scores.payout_path is not None:
        charts.append(
            ("payout", _line_figure("Simulated stake (start 1.0)", eras, cols, scores.payout_path, "stake"))
        )
    return charts


def summary_html(summary: pd.DataFrame) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in ["prediction", *summary.columns])
    rows = []
    for name, row in summary.iterrows():
        cells = "".join(
            f"<td>{v:.4f}</td>" if isinstance(v, float) else f"<td>{v}</td>" for v in row.tolist()
        )
        rows.append(f"<tr><th>{html.escape(str(name))}</th>{cells}</tr>")
    table = f'<table class="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table>'
    return f'<div style="overflow-x:auto">{table}</div>'


def write_html_report(
    scores: ValidationScores, out: Path | str, *, title: str = "numerflow validation report"
) -> Path:
    """Write the report to ``out`` (atomically) and return its path."""
    out = Path(out)
    parts = [
        f"<section><h2>{html.escape(name)}</h2>{_figure_html(fig, f'chart-{name}')}</section>"
        for name, fig in _charts(scores)
    ]
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in scores.notes)
    doc = (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style>"
        f"<script type='text/javascript'>{_plotly_js()}</script></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p>{len(scores.columns)} prediction column(s), {len(scores.eras)} eras "
        f"({html.escape(str(scores.eras[0]))}–{html.escape(str(scores.eras[-1]))}).</p>"
        f"{summary_html(scores.summary)}<ul class='notes'>{notes}</ul>{''.join(parts)}</body></html>\n"
    )
    return atomic_write_text(out, doc)
