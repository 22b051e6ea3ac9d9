"""A run folder in short: a summary table, and one HTML file and one PDF to share.

:func:`summary_table` counts the runs per regime and finds the largest stable
learning rate, reading the results block by block so that a map larger than
memory can be summarized; :func:`format_table` prints it for a terminal.
:func:`write_report` puts the summary, the config, the provenance and every
figure of the folder, each with a caption, into ``report.html`` (one
self-contained file, images embedded) and ``report.pdf``.

>>> import dynamics
>>> ds = dynamics.run({"objective": {"expr": "(w - 2)**2 + 1"},
...                    "start": {"w": 0.0},
...                    "optimizer": {"name": "sgd", "learning_rate": 0.1},
...                    "sweep": {"optimizer.learning_rate": [0.1, 0.5, 1.5]}})
>>> table = summary_table(ds)
>>> table["counts"]["converged"], table["stable_lr"]["lr"]
(2, 0.5)
>>> print(format_table(table).splitlines()[0])
experiment: 3 runs (3)

For a run folder, ``write_report("runs/seed")`` writes
``runs/seed/report.html`` and ``runs/seed/report.pdf``.
"""

import base64
import math
import os
import tempfile
import textwrap
from html import escape

import numpy as np
import xarray as xr

from dynamics import store
from dynamics.classify import Regime
from dynamics.errors import ConfigError

#: Cells of ``regime`` read at a time by :func:`summary_table` (whole rows of
#: the first dimension, at least one).
BLOCK = 2**20

#: Figure files a run folder may hold, by extension, with their media types.
MEDIA = {
    "png": "image/png",
    "svg": "image/svg+xml",
    "pdf": "application/pdf",
    "gif": "image/gif",
}

#: What each figure shows, by file stem, in the order the report lists them.
CAPTIONS = {
    "stability_map": (
        "The regime of every run over the first two sweep axes, one flat cell "
        "per run: converged (plain, or with overshoot: a zig-zag across the "
        "minimum), oscillating, diverged or stalled. The edge between the "
        "converged and diverged cells is the stability boundary. Further sweep "
        "axes are shown at their first value."
    ),
    "period_map": (
        "The period of the orbit each run settles on, over the first two sweep "
        "axes: converged runs are fixed points, oscillating runs are coloured "
        "by their period (up to 64), and those without one are aperiodic, or "
        "chaotic when their Lyapunov exponent is above 0.02."
    ),
    "bifurcation": (
        "Bifurcation diagram: the last iterates of each run (analysis.orbit) "
        "against the swept value. A fixed point shows as one dot, a cycle of "
        "period p as p dots, chaos as a smear; a diverged run leaves a gap. "
        "Below, the Lyapunov exponent: positive where nearby paths separate."
    ),
    "basin_map": (
        "Which minimum each run converged to, over the first two sweep axes: "
        "one colour per basin, with its minimum's coordinates in the legend; "
        "runs that did not converge belong to no basin."
    ),
    "theory_overlay": (
        "The stability map with the closed-form boundary of the quadratic "
        "under this optimizer drawn over it (where the spectral radius of the "
        "linear iteration is 1), and the share of cells whose simulated regime "
        "agrees with the theory."
    ),
    "edge_of_stability": (
        "Loss (top) and sharpness, the largest eigenvalue of the loss Hessian "
        "(bottom), step by step for the unswept run, with the optimizer's "
        "stability threshold as a dashed line (2/lr for plain gradient "
        "descent). Sharpness that climbs to the threshold and hovers there is "
        "the edge of stability."
    ),
    "cost_tangent": (
        "The cost around the configured start, with its tangent at the start "
        "and the slope there: the first step moves against that slope, by the "
        "learning rate times it."
    ),
    "descent_path": (
        "The configured run (the unswept values) step by step down the cost "
        "curve (left), and its loss by step (right): a steady descent, a "
        "zig-zag across the minimum, a cycle or an escape."
    ),
    "refinement": (
        "Adaptive refinement: the refined map beside the cells that were "
        "actually simulated to draw it. Only cells near a boundary between "
        "regimes were run at the finer levels; the rest were filled in from "
        "the coarser level."
    ),
}

#: What each animation (GIF, from ``dynamics animate``) shows, by file stem.
ANIMATIONS = {
    "descent_path": (
        "The configured run replayed step by step: on the cost curve with its "
        "tangent for one parameter, on the loss contours for two, as the loss "
        "by step otherwise."
    ),
    "zoom": (
        "A zoom into the stability boundary: each frame is the stability map "
        "of a smaller window around one point of the converged/diverged "
        "boundary, simulated at full resolution."
    ),
}

_ROW_NAMES = {
    "overshoot": "with overshoot",
    "not_run": "not run",
    "nonfinite_start": "non-finite start",
}
_A4 = (8.27, 11.69)


def summary_table(ds: xr.Dataset) -> dict:
    """Counts runs per regime and finds the largest stable learning rates.

    ``regime`` (with ``overshoot``, ``period`` and ``chaotic`` where present)
    is read :data:`BLOCK` cells at a time along the first dimension, so a
    lazily opened Dataset (:func:`dynamics.load`) larger than memory can be
    summarized. Runs whose regime is ``-1`` have not run (an interrupted run,
    attribute ``complete`` false) and are counted as ``not_run``.

    Returns:
      A JSON-serializable dict:

      - ``name``, ``complete``, ``total`` (runs in the grid);
      - ``axes``: per sweep dimension its ``name``, ``size``, ``min``,
        ``max`` and ``scale`` (``linear``, ``log`` or ``list``);
      - ``counts``: runs per regime label, as in
        :func:`dynamics.results.summarize` (``not_run`` when any have not run),
        plus ``overshoot`` (converged runs that zig-zag) and, when ``period``
        is stored, ``periodic`` and ``aperiodic`` oscillating runs, split into
        ``chaotic`` and ``aperiodic`` when ``chaotic`` is stored;
      - ``shares``: each count over ``total``;
      - ``converged_fraction``: the share of runs that converged;
      - ``stable_lr``: ``None`` when no learning rate is swept, otherwise
        ``axis`` (the learning-rate dimension), ``lr`` and ``next_lr`` (the
        largest rate at which every run converged, at every other swept value,
        and the next rate of the grid), and, when another swept dimension that
        is not a start exists, ``by`` (the first such) and ``rows``: per value
        ``at`` of it, the ``lr`` and ``next_lr`` over the runs of that row;
      - ``theory_agreement``, when the Dataset's attributes hold it.
    """
    regime = ds["regime"]
    dims = regime.dims
    rate = _rate_dim(dims)
    others = [dim for dim in dims if dim != rate]
    by = next((dim for dim in others if not dim.startswith("start.")), None)
    kept = [dim for dim in dims if dim in (rate, by)]
    reduced = tuple(axis for axis, dim in enumerate(dims) if dim not in kept)
    stable = np.ones([regime.sizes[dim] for dim in kept], dtype=bool)

    counts = dict.fromkeys(Regime, 0)
    extra = {"overshoot": 0}
    if "period" in ds:
        extra["periodic"] = 0
    if "chaotic" in ds:
        extra["chaotic"] = 0
    if "nonfinite_start" in ds:
        extra["nonfinite_start"] = 0
    names = ["overshoot", "period", "chaotic", "nonfinite_start"]
    for part, block in _blocks(ds, names):
        codes = block["regime"]
        for code in Regime:
            counts[code] += int(np.count_nonzero(codes == code))
        oscillating = codes == Regime.OSCILLATING
        if "overshoot" in block:
            extra["overshoot"] += int(np.count_nonzero(block["overshoot"]))
        if "period" in block:
            extra["periodic"] += int(
                np.count_nonzero(oscillating & (block["period"] >= 2))
            )
        if "chaotic" in block:
            extra["chaotic"] += int(np.count_nonzero(block["chaotic"]))
        if "nonfinite_start" in block:
            extra["nonfinite_start"] += int(np.count_nonzero(block["nonfinite_start"]))
        if rate is not None:
            converged = (codes == Regime.CONVERGED).all(axis=reduced)
            if dims[0] in kept:
                stable[part] &= converged
            else:
                stable &= converged

    total = int(regime.size)
    complete = bool(ds.attrs.get("complete", True))
    table_counts = {
        code.label: counts[code]
        for code in Regime
        if code != Regime.NOT_RUN or counts[code] or not complete
    }
    oscillating = counts[Regime.OSCILLATING]
    table_counts["overshoot"] = extra["overshoot"]
    if "periodic" in extra:
        table_counts["periodic"] = extra["periodic"]
        if "chaotic" in extra:
            table_counts["chaotic"] = extra["chaotic"]
        table_counts["aperiodic"] = (
            oscillating - extra["periodic"] - extra.get("chaotic", 0)
        )
    if "nonfinite_start" in extra:
        table_counts["nonfinite_start"] = extra["nonfinite_start"]
    table = {
        "name": str(ds.attrs.get("name", "")),
        "complete": complete and counts[Regime.NOT_RUN] == 0,
        "total": total,
        "axes": [_axis(ds, dim) for dim in dims],
        "counts": table_counts,
        "shares": {key: _share(n, total) for key, n in table_counts.items()},
        "converged_fraction": _share(counts[Regime.CONVERGED], total),
        "stable_lr": None,
    }
    if rate is not None:
        table["stable_lr"] = _stable_rates(ds, rate, by, kept, stable)
    if "theory_agreement" in ds.attrs:
        table["theory_agreement"] = float(ds.attrs["theory_agreement"])
    return table


def _rate_dim(dims):
    return next(
        (
            dim
            for dim in dims
            if dim.startswith("optimizer.") and dim.endswith("learning_rate")
        ),
        None,
    )


def _blocks(ds, names):
    """Yields ``(slice, {name: values})`` over whole rows of the first dimension."""
    regime = ds["regime"]
    names = ["regime"] + [name for name in names if name in ds]
    if regime.ndim == 0:
        yield slice(None), {name: np.asarray(ds[name].values) for name in names}
        return
    first = regime.dims[0]
    row = math.prod(regime.shape[1:])
    rows = max(1, BLOCK // max(row, 1))
    for begin in range(0, regime.shape[0], rows):
        part = slice(begin, begin + rows)
        yield (
            part,
            {
                name: np.asarray(ds[name].isel({first: part}).transpose(*regime.dims))
                for name in names
            },
        )


def _plain(value):
    """A NumPy scalar as a Python one, floats by their shortest repr in their dtype.

    A float32 0.01 becomes 0.01, not 0.009999999776482582; it converts back to
    the same float32.
    """
    value = np.asarray(value)
    if value.dtype.kind == "f":
        return float(str(value.item() if value.dtype == np.float64 else value[()]))
    return value.item()


def _share(count, total):
    return count / total if total else 0.0


def _axis(ds, dim):
    if dim in ds.coords:
        values, scale = np.asarray(ds[dim].values), ds[dim].attrs.get("scale", "list")
    else:
        values, scale = np.arange(ds.sizes[dim]), "index"
    return {
        "name": dim,
        "size": int(ds.sizes[dim]),
        "min": _plain(values.min()) if values.size else None,
        "max": _plain(values.max()) if values.size else None,
        "scale": str(scale),
    }


def _stable_rates(ds, rate, by, kept, stable):
    rates = np.asarray(ds[rate].values)
    if kept[0] != rate:
        stable = stable.T  # now (rate, by)
    overall = stable.all(axis=1) if by is not None else stable
    found = {"axis": rate, "by": by}
    found["lr"], found["next_lr"] = _largest(rates, overall)
    if by is not None:
        found["rows"] = []
        for at, column in zip(np.asarray(ds[by].values), stable.T, strict=True):
            lr, next_lr = _largest(rates, column)
            found["rows"].append({"at": _plain(at), "lr": lr, "next_lr": next_lr})
    return found


def _largest(rates, good):
    """The largest rate where ``good``, and the next rate of the grid above it."""
    order = np.argsort(rates, kind="stable")
    good = np.asarray(good)[order]
    if not good.any():
        return None, None
    best = int(np.flatnonzero(good)[-1])
    rates = rates[order]
    above = _plain(rates[best + 1]) if best + 1 < len(rates) else None
    return _plain(rates[best]), above


def format_table(table: dict) -> str:
    """The summary from :func:`summary_table` as plain text for a terminal."""
    total = table["total"]
    shape = " × ".join(str(axis["size"]) for axis in table["axes"]) or "1"
    lines = [f"{table['name'] or 'run'}: {_runs(total)} ({shape})"]
    if not table["complete"]:
        lines.append(f"incomplete: {_incomplete(table)}")
    if table["axes"]:
        lines += ["", "  sweep axis                        size  range"]
        for axis in table["axes"]:
            lines.append(
                f"  {axis['name']:<32} {axis['size']:>5}  "
                f"{_number(axis['min'])} … {_number(axis['max'])} ({axis['scale']})"
            )
    lines += ["", "  regime                  runs    share"]
    for key, count, share, depth in _regime_rows(table):
        label = "  " * depth + _ROW_NAMES.get(key, key)
        lines.append(f"  {label:<20} {count:>8,}  {share:6.1%}")
    lines += ["", f"Converged: {table['converged_fraction']:.1%} of runs"]
    lines += _stable_lines(table)
    if "theory_agreement" in table:
        lines += [
            "",
            "The closed-form boundary (spectral radius 1) agrees with "
            f"{table['theory_agreement']:.2%} of cells.",
        ]
    return "\n".join(lines)


def _runs(count):
    return f"{count:,} run" + ("" if count == 1 else "s")


def _incomplete(table):
    missing = table["counts"].get("not_run", 0)
    if not missing:
        return "every run is done, but the results are not written yet"
    return (
        f"{missing:,} of {table['total']:,} runs have not run yet (the sweep "
        "was stopped, or is still running)"
    )


def _regime_rows(table):
    """``(key, runs, share, depth)`` per row of the regime table, nested."""
    counts, shares = table["counts"], table["shares"]
    under = {
        "converged": ["overshoot"],
        "oscillating": [k for k in ("periodic", "chaotic", "aperiodic") if k in counts],
        "diverged": [k for k in ("nonfinite_start",) if counts.get(k)],
    }
    labels = [code.label for code in Regime if code != Regime.NOT_RUN]
    if "not_run" in counts:
        labels.append("not_run")
    for label in labels:
        yield label, counts[label], shares[label], 0
        for key in under.get(label, []):
            yield key, counts[key], shares[key], 1


def _stable_sentence(table):
    """The largest learning rate stable everywhere, as a sentence."""
    stable = table["stable_lr"]
    others = [axis["name"] for axis in table["axes"] if axis["name"] != stable["axis"]]
    if all(name.startswith("start.") for name in others):
        where = "from every start"
    else:
        where = "at every " + ", ".join(others)
    sentence = f"Largest learning rate that converges {where}: {_rate_text(stable)}"
    if table["counts"].get("not_run"):
        sentence += "; runs not run yet count as not converged"
    return sentence


def _stable_lines(table):
    stable = table["stable_lr"]
    if stable is None:
        return []
    lines = ["", _stable_sentence(table)]
    if stable["by"] is not None:
        lines += [
            "",
            f"Largest stable learning rate per {stable['by']}:",
            f"  {stable['by']:<24} {'largest stable':>14}  {'next':>10}",
        ]
        for row in stable["rows"]:
            lines.append(
                f"  {_number(row['at']):<24} {_number(row['lr']):>14}  "
                f"{_number(row['next_lr']):>10}"
            )
    return lines


def _rate_text(found):
    if found["lr"] is None:
        return "none in the grid"
    if found["next_lr"] is None:
        return f"{found['lr']:.4g} (the largest of the grid)"
    return f"{found['lr']:.4g} (the next, {found['next_lr']:.4g}, does not)"


def _number(value):
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def caption(filename: str) -> str:
    """What the figure file ``filename`` of a run folder shows, in plain words."""
    stem, ext = os.path.splitext(os.path.basename(filename))
    animated = ext.lower() == ".gif"
    text = (ANIMATIONS if animated else CAPTIONS).get(stem)
    if text is None:
        words = stem.replace("_", " ").replace("-", " ").strip() or filename
        kind = "an animation" if animated else "a figure"
        text = (
            f"{words[0].upper()}{words[1:]}: {kind} found in the run folder; "
            "the report knows no description for this name."
        )
    if animated:
        text = f"Animation (its first frame in the PDF). {text}"
    return text


def write_report(
    out: str,
    html: str | None = None,
    pdf: str | None = None,
    *,
    force: bool = False,
) -> tuple[str, str]:
    """Writes a run folder's report as one HTML file and one PDF.

    Both hold a title, the summary (:func:`summary_table`), the config, the
    provenance (every attribute of the results but the config) and every
    figure of the folder with a caption. The HTML is self-contained: images
    are embedded as data URIs. Figures saved as PDF or SVG are redrawn as PNG
    in a temporary folder where a raster image is needed. Each file is written
    under a temporary name beside it and renamed into place.

    Args:
      out: a folder that ``dynamics run -o`` wrote.
      html: where to write the HTML; default ``out/report.html``.
      pdf: where to write the PDF; default ``out/report.pdf``.
      force: replace reports that exist (otherwise that is an error).

    Returns:
      The paths of the HTML file and the PDF.

    Raises:
      ConfigError: ``out`` is not a run folder, or a report exists and
        ``force`` is false.
    """
    folder = os.fspath(out)
    fix = "give a folder that `dynamics run -o` wrote"
    if not os.path.isdir(folder):
        raise ConfigError(f"'{folder}' is not a folder; {fix}")
    if not os.path.isdir(os.path.join(folder, store.RESULTS)):
        raise ConfigError(
            f"'{folder}' is not a dynamics run (it holds no {store.RESULTS}); {fix}"
        )
    html = os.fspath(html) if html else os.path.join(folder, "report.html")
    pdf = os.fspath(pdf) if pdf else os.path.join(folder, "report.pdf")
    if os.path.abspath(html) == os.path.abspath(pdf):
        raise ConfigError(f"the HTML and the PDF report are both '{html}'; give two")
    for path in (html, pdf):
        if os.path.isdir(path):
            raise ConfigError(f"report '{path}' is a folder; give a file name")
        if os.path.exists(path) and not force:
            raise ConfigError(
                f"report '{path}' already exists; pass --force to replace it"
            )
        parent = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(parent):
            raise ConfigError(
                f"cannot write report '{path}': its folder does not exist"
            )
        if not os.access(parent, os.W_OK | os.X_OK):
            raise ConfigError(
                f"cannot write report '{path}': '{parent}' is not writable"
            )

    ds = store.load(folder)
    table = summary_table(ds)
    config = _config_text(folder, ds)
    provenance = {
        key: f"{value:.6g}" if isinstance(value, float) else value
        for key, value in ds.attrs.items()
        if key != "config"
    }
    if "resumed" in provenance:  # stored as 0 or 1
        provenance["resumed"] = "yes" if provenance["resumed"] else "no"
    found = _figure_files(folder, skip={html, pdf})
    with tempfile.TemporaryDirectory(prefix="dynamics-report-") as scratch:
        redrawn = _redraw(folder, ds, found, scratch)
        page = _html(table, config, provenance, found, redrawn)
        _replace(html, lambda path: _write_text(path, page))
        sections = (table, config, provenance, found, redrawn)
        _replace(pdf, lambda path: _pdf(path, *sections))
    return html, pdf


def _config_text(folder, ds):
    path = os.path.join(folder, "config.yaml")
    if os.path.isfile(path):
        with open(path, encoding="utf-8") as f:
            return f.read()
    return str(ds.attrs.get("config", "(no config recorded)"))


def _figure_files(folder, skip):
    """The figure files of ``folder``: known stems first, in caption order."""
    skipped = {os.path.abspath(path) for path in skip}
    names = []
    for name in os.listdir(folder):
        stem, ext = os.path.splitext(name)
        path = os.path.join(folder, name)
        if (
            name.startswith(".")
            or ext.lstrip(".").lower() not in MEDIA
            or stem == "report"
            or os.path.abspath(path) in skipped
            or not os.path.isfile(path)
        ):
            continue
        names.append(name)
    order = list(CAPTIONS)

    def rank(name):
        stem, ext = os.path.splitext(name)
        known = order.index(stem) if stem in order else len(order)
        return (known, ext.lower() == ".gif", name)

    return [os.path.join(folder, name) for name in sorted(names, key=rank)]


def _redraw(folder, ds, found, scratch):
    """PNGs of the figures saved as PDF or SVG, by stem; empty when none are."""
    if not any(path.lower().endswith((".pdf", ".svg")) for path in found):
        return {}
    # Imported here: the API writes run folders, and may write their reports.
    from dynamics import api, zoom

    exp = zoom.read_source(folder)
    paths = api.write_figures(exp, ds, scratch, "png")
    return {os.path.splitext(os.path.basename(path))[0]: path for path in paths}


def _raster(path, redrawn):
    """A PNG or GIF path that shows the figure at ``path``, or None."""
    stem, ext = os.path.splitext(os.path.basename(path))
    if ext.lower() in (".png", ".gif"):
        return path
    return redrawn.get(stem)


def _replace(target, write):
    """Writes ``target`` through ``write(temporary path)``, then renames it."""
    handle, partial = tempfile.mkstemp(
        prefix=f".{os.path.basename(target)}.",
        suffix=".partial",
        dir=os.path.dirname(os.path.abspath(target)),
    )
    os.close(handle)
    try:
        write(partial)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(partial, 0o666 & ~mask)  # mkstemp makes it private; a report is not
        os.replace(partial, target)
    except BaseException:
        if os.path.exists(partial):
            os.remove(partial)
        raise


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _data_uri(path):
    ext = os.path.splitext(path)[1].lstrip(".").lower()
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    return f"data:{MEDIA[ext]};base64,{data}"


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2rem; }
.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; }
th, td { padding: 0.15rem 0.8rem; border-bottom: 1px solid #ddd; text-align: left;
         vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.sub td:first-child { padding-left: 2rem; color: #555; }
pre { background: #f6f6f6; padding: 0.8rem; overflow-x: auto; font-size: 0.85rem; }
.provenance td { font-family: ui-monospace, monospace; font-size: 0.85rem;
                 white-space: pre-wrap; }
figure { margin: 2rem 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: 0.95rem; color: #333; }
.file { color: #777; font-family: ui-monospace, monospace; }
"""


def _html(table, config, provenance, found, redrawn):
    name = table["name"] or "run"
    shape = " × ".join(str(axis["size"]) for axis in table["axes"]) or "1"
    created = provenance.get("created")
    lead = f"{_runs(table['total'])} ({shape})"
    if created:
        lead += f", created {created}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>{escape(name)}: dynamics report</title>",
        f"<style>{_STYLE}</style>",
        "</head>",
        "<body>",
        f"<h1>{escape(name)}</h1>",
        f'<p class="lead">{escape(lead)}</p>',
        '<h2 id="summary">Summary</h2>',
    ]
    if not table["complete"]:
        parts.append(f"<p><strong>Incomplete:</strong> {_incomplete(table)}.</p>")
    parts.append('<table class="regimes">')
    parts.append("<tr><th>regime</th><th>runs</th><th>share</th></tr>")
    for key, count, share, depth in _regime_rows(table):
        row_class = ' class="sub"' if depth else ""
        parts.append(
            f'<tr data-key="{escape(key)}"{row_class}>'
            f"<td>{escape(_ROW_NAMES.get(key, key))}</td>"
            f'<td class="num">{count:,}</td><td class="num">{share:.1%}</td></tr>'
        )
    parts.append("</table>")
    parts.append(f"<p>Converged: {table['converged_fraction']:.1%} of runs.</p>")
    parts += _html_stable(table)
    if "theory_agreement" in table:
        parts.append(
            "<p>The closed-form boundary (spectral radius 1) agrees with "
            f"{table['theory_agreement']:.2%} of cells.</p>"
        )
    if table["axes"]:
        parts.append('<table class="axes">')
        parts.append(
            "<tr><th>sweep axis</th><th>size</th><th>range</th><th>scale</th></tr>"
        )
        for axis in table["axes"]:
            parts.append(
                f"<tr><td>{escape(axis['name'])}</td>"
                f'<td class="num">{axis["size"]}</td>'
                f"<td>{escape(_number(axis['min']))} … "
                f"{escape(_number(axis['max']))}</td>"
                f"<td>{escape(axis['scale'])}</td></tr>"
            )
        parts.append("</table>")
    parts += ['<h2 id="config">Config</h2>', f"<pre>{escape(config)}</pre>"]
    parts += ['<h2 id="provenance">Provenance</h2>', '<table class="provenance">']
    for key, value in provenance.items():
        parts.append(f"<tr><th>{escape(key)}</th><td>{escape(_attr(value))}</td></tr>")
    parts.append("</table>")
    parts.append('<h2 id="figures">Figures</h2>')
    if not found:
        parts.append("<p>This run folder holds no figures.</p>")
    for number, path in enumerate(found, 1):
        parts.append(_html_figure(number, path, redrawn))
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)


def _html_stable(table):
    stable = table["stable_lr"]
    if stable is None:
        return []
    parts = [f"<p>{escape(_stable_sentence(table))}.</p>"]
    if stable["by"] is not None:
        parts.append('<table class="stable">')
        parts.append(
            f"<tr><th>{escape(stable['by'])}</th><th>largest stable "
            f"{escape(stable['axis'])}</th><th>next (not stable)</th></tr>"
        )
        for row in stable["rows"]:
            parts.append(
                f'<tr><td class="num">{escape(_number(row["at"]))}</td>'
                f'<td class="num">{escape(_number(row["lr"]))}</td>'
                f'<td class="num">{escape(_number(row["next_lr"]))}</td></tr>'
            )
        parts.append("</table>")
    return parts


def _html_figure(number, path, redrawn):
    filename = os.path.basename(path)
    shown = path if path.lower().endswith(".svg") else _raster(path, redrawn)
    text = escape(caption(filename))
    head = f'<figure id="figure-{number}">'
    tail = (
        f"<figcaption><strong>Figure {number}.</strong> {text} "
        f'<span class="file">({escape(filename)})</span></figcaption></figure>'
    )
    if shown is None:
        return (
            f"{head}<p>{escape(filename)} could not be shown here: it was not "
            f"redrawn as an image; open the file itself.</p>{tail}"
        )
    alt = escape(f"Figure {number}: {filename}")
    return f'{head}<img src="{_data_uri(shown)}" alt="{alt}">{tail}'


def _attr(value):
    if isinstance(value, np.ndarray):
        return np.array2string(value, separator=", ")
    return str(value)


def _pdf(path, table, config, provenance, found, redrawn):
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages

    from dynamics import __version__

    name = table["name"] or "run"
    metadata = {
        "Title": f"{name}: dynamics report",
        "Creator": f"dynamics {__version__}",
    }
    # TrueType fonts keep the text searchable and copyable in viewers.
    with (
        matplotlib.rc_context({"pdf.fonttype": 42}),
        PdfPages(path, metadata=metadata) as pages,
    ):
        for page in _text_pages(name, table, config, provenance):
            pages.savefig(page)
        for number, figure_path in enumerate(found, 1):
            pages.savefig(_figure_page(number, figure_path, redrawn))


def _text_pages(name, table, config, provenance):
    """The title, summary, config and provenance, flowed over A4 pages."""
    width = 100
    items = [("title", name), ("text", "dynamics report"), ("gap", "")]
    items += [("heading", "Summary")]
    items += [("mono", line) for line in _wrap(format_table(table), width)]
    items += [("gap", ""), ("heading", "Config")]
    items += [("mono", line) for line in _wrap(config.rstrip("\n"), width)]
    items += [("gap", ""), ("heading", "Provenance")]
    key_width = min(24, max((len(key) for key in provenance), default=0))
    for key, value in provenance.items():
        text = _attr(value)
        wrapped = _wrap(text, width - key_width - 2) or [""]
        items.append(("mono", f"{key:<{key_width}}  {wrapped[0]}"))
        items += [("mono", " " * (key_width + 2) + rest) for rest in wrapped[1:]]

    heights = {"title": 0.42, "heading": 0.32, "text": 0.22, "mono": 0.145, "gap": 0.15}
    top, bottom, left = _A4[1] - 0.7, 0.7, 0.6
    pages, y, page = [], top, None
    for kind, text in items:
        # A heading keeps at least three lines of its section below it.
        need = heights[kind] + (3 * heights["mono"] if kind == "heading" else 0)
        if page is None or y - need < bottom:
            page = _blank(_A4)
            pages.append(page)
            y = top
        y -= heights[kind]
        style = {
            "title": {"fontsize": 18, "fontweight": "bold"},
            "heading": {"fontsize": 13, "fontweight": "bold"},
            "text": {"fontsize": 10, "color": "0.35"},
            "mono": {"fontsize": 7.6, "family": "monospace"},
            "gap": None,
        }[kind]
        if style is not None:
            page.text(left / _A4[0], y / _A4[1], text, va="baseline", **style)
    return pages


def _wrap(text, width):
    lines = []
    for line in text.splitlines():
        lines += textwrap.wrap(
            line,
            width,
            replace_whitespace=False,
            drop_whitespace=False,
            subsequent_indent="    ",
        ) or [""]
    return lines


def _blank(size):
    from matplotlib.figure import Figure

    return Figure(figsize=size)


def _figure_page(number, path, redrawn):
    """One page: a heading, the figure at the largest size that fits, its caption."""
    from matplotlib.image import imread

    filename = os.path.basename(path)
    shown = _raster(path, redrawn)
    image = imread(shown) if shown is not None else None
    wide = image is None or image.shape[1] >= image.shape[0]
    size = (_A4[1], _A4[0]) if wide else _A4
    page = _blank(size)
    page.text(
        0.6 / size[0],
        (size[1] - 0.75) / size[1],
        f"Figure {number}  ({filename})",
        fontsize=13,
        fontweight="bold",
        va="baseline",
    )
    lines = textwrap.wrap(caption(filename), int(13 * (size[0] - 1.2)))
    if image is None:
        missing = f"{filename} could not be redrawn as an image; open the file."
        lines = [missing, *lines]
        caption_top = size[1] - 1.2
    else:
        left, bottom, width, height = _image_rect(image.shape[1], image.shape[0], size)
        axes = page.add_axes(
            (left / size[0], bottom / size[1], width / size[0], height / size[1])
        )
        axes.imshow(image, interpolation="none", aspect="auto")
        axes.set_axis_off()
        caption_top = bottom - 0.3
    page.text(
        0.6 / size[0],
        caption_top / size[1],
        "\n".join(lines),
        fontsize=10,
        va="top",
        linespacing=1.4,
    )
    return page


def _image_rect(width_px, height_px, size):
    """Where a figure of ``width_px`` × ``height_px`` goes on a page of ``size``.

    Returns ``(left, bottom, width, height)`` in inches: the largest box of the
    image's aspect within the page's margins, above room for the caption,
    centred horizontally.
    """
    margin, head, foot = 0.6, 1.05, 1.5
    room_w = size[0] - 2 * margin
    room_h = size[1] - head - foot
    aspect = height_px / width_px
    width = min(room_w, room_h / aspect)
    height = width * aspect
    left = (size[0] - width) / 2
    bottom = size[1] - head - height
    return left, bottom, width, height
