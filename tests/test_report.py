"""Reports: the summary table, and the HTML and PDF of a run folder."""

import base64
import json
import os
import shutil
from html import escape
from html.parser import HTMLParser

import numpy as np
import pypdfium2
import pytest
from PIL import Image, ImageFilter

import dynamics
from dynamics import api, report, results, zoom
from dynamics.errors import ConfigError

CONFIGS = os.path.join(os.path.dirname(__file__), os.pardir, "configs")


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    """The default run (`dynamics run` without a config), with its PNG figures."""
    out = str(tmp_path_factory.mktemp("report") / "seed")
    dynamics.run(None, out=out)
    return out


@pytest.fixture(scope="module")
def written(seed_run):
    return report.write_report(seed_run)


@pytest.fixture(scope="module")
def momentum():
    """Heavy ball on a quadratic, over learning rate and momentum."""
    return dynamics.run(
        os.path.join(CONFIGS, "momentum_quadratic.yaml"),
        overrides=[
            "sweep.optimizer.learning_rate.num=45",
            "sweep.optimizer.momentum={linspace: [0.0, 0.9], num: 4}",
        ],
    )


def figure_files(folder):
    return sorted(
        name
        for name in os.listdir(folder)
        if name.endswith((".png", ".svg", ".pdf")) and not name.startswith("report.")
    )


def test_summary_table_agrees_with_summarize(seed_run):
    ds = dynamics.load(seed_run)
    table = report.summary_table(ds)
    summary = results.summarize(ds)

    assert json.loads(json.dumps(table)) == table
    assert table["total"] == summary.total == 240 * 161
    assert {key: table["counts"][key] for key in summary.counts} == summary.counts
    assert table["counts"]["converged"] > 0 and table["counts"]["diverged"] > 0
    oscillating = np.asarray(ds["regime"]) == 1
    assert table["counts"]["periodic"] == int(
        np.sum(oscillating & (np.asarray(ds["period"]) >= 2))
    )
    assert table["counts"]["chaotic"] == int(np.sum(ds["chaotic"]))
    assert table["converged_fraction"] == summary.counts["converged"] / (240 * 161)
    stable = table["stable_lr"]
    assert (stable["axis"], stable["by"]) == ("optimizer.learning_rate", None)
    assert np.float32(stable["lr"]) == np.float32(summary.stable_lr)
    assert np.float32(stable["next_lr"]) == np.float32(summary.next_lr)
    assert [
        (a["name"], a["size"], a["min"], a["max"], a["scale"]) for a in table["axes"]
    ] == [
        ("optimizer.learning_rate", 240, 0.01, 1.2, "linear"),
        ("start.w", 161, -2.0, 6.0, "linear"),
    ]
    text = report.format_table(table)
    assert f"{summary.counts['converged']:>8,}" in text
    assert f"from every start: {summary.stable_lr:.4g}" in text


def test_summary_table_reads_block_by_block(seed_run, monkeypatch):
    ds = dynamics.load(seed_run)
    whole = report.summary_table(ds)
    for block in (1, 45, 20 * 7):  # a row at a time, 2 rows, 7 rows (a short last)
        monkeypatch.setattr(report, "BLOCK", block)
        assert report.summary_table(ds) == whole
    assert not ds["regime"].variable._in_memory  # read in pieces, never kept


def test_stable_learning_rate_per_momentum_is_heavy_ball_theory(momentum):
    # Heavy ball on a quadratic of curvature λ is stable iff lr·λ < 2 + 2β.
    table = report.summary_table(momentum)
    stable = table["stable_lr"]
    curvature = 2.0
    rates = momentum["optimizer.learning_rate"].values
    step = float(rates[1] - rates[0])

    assert stable["by"] == "optimizer.momentum"
    assert [row["at"] for row in stable["rows"]] == [0.0, 0.3, 0.6, 0.9]
    for row in stable["rows"]:
        boundary = (2 + 2 * row["at"]) / curvature
        assert boundary - step <= row["lr"] <= boundary, row
        assert row["next_lr"] == pytest.approx(row["lr"] + step, rel=1e-5)

    summary = results.summarize(momentum)
    assert np.float32(stable["lr"]) == np.float32(summary.stable_lr)
    assert stable["lr"] == min(row["lr"] for row in stable["rows"])
    assert {key: table["counts"][key] for key in summary.counts} == summary.counts
    text = report.format_table(table)
    assert "Largest stable learning rate per optimizer.momentum" in text


def test_runs_not_run_are_counted(seed_run):
    ds = dynamics.load(seed_run).load()
    ds["regime"][:3] = -1  # three learning rates × 161 starts never ran
    ds.attrs["complete"] = False
    table = report.summary_table(ds)

    assert table["complete"] is False
    assert table["counts"]["not_run"] == 3 * 161
    assert (
        sum(
            table["counts"][r]
            for r in ("converged", "oscillating", "diverged", "stalled", "not_run")
        )
        == 240 * 161
    )
    assert table["counts"] == results.summarize(ds).counts | {
        key: table["counts"][key]
        for key in ("periodic", "chaotic", "aperiodic", "nonfinite_start")
    }
    assert "483 of 38,640 runs have not run yet" in report.format_table(table)


class _Page(HTMLParser):
    """The images, captions and regime rows of a report page."""

    def __init__(self):
        super().__init__()
        self.images, self.captions, self.rows = [], [], {}
        self._caption = self._row = None
        self._cells = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs["src"])
        elif tag == "figcaption":
            self._caption = []
        elif tag == "tr" and "data-key" in attrs:
            self._row, self._cells = attrs["data-key"], []
        elif tag == "td" and self._row is not None:
            self._cells.append("")

    def handle_endtag(self, tag):
        if tag == "figcaption":
            self.captions.append("".join(self._caption))
            self._caption = None
        elif tag == "tr" and self._row is not None:
            self.rows[self._row] = self._cells
            self._row = None

    def handle_data(self, data):
        if self._caption is not None:
            self._caption.append(data)
        if self._row is not None and self._cells:
            self._cells[-1] += data


def test_html_embeds_every_figure_with_its_caption(seed_run, written):
    html, _ = written
    assert html == os.path.join(seed_run, "report.html")
    with open(html, encoding="utf-8") as f:
        text = f.read()
    page = _Page()
    page.feed(text)
    names = figure_files(seed_run)
    assert {"stability_map.png", "theory_overlay.png"} <= set(names)

    assert len(page.images) == len(page.captions) == len(names)
    embedded = []
    for src in page.images:
        head, data = src.split(",", 1)
        assert head == "data:image/png;base64"
        embedded.append(base64.b64decode(data))
    for name in names:
        with open(os.path.join(seed_run, name), "rb") as f:
            assert f.read() in embedded, name
        assert any(report.caption(name) in c and name in c for c in page.captions)
    assert 'src="http' not in text and "href=" not in text

    summary = results.summarize(dynamics.load(seed_run))
    for key, count in summary.counts.items():
        label, runs, share = page.rows[key]
        assert int(runs.replace(",", "")) == count, (label, key)
    with open(os.path.join(seed_run, "config.yaml"), encoding="utf-8") as f:
        assert escape(f.read()) in text
    assert "<th>jax_version</th>" in text and "<th>created</th>" in text
    assert "<th>resumed</th><td>no</td>" in text  # stored as 0


def _correlation(page, rect, figure):
    """Pearson correlation of the page's pixels in ``rect`` with ``figure``'s.

    Both are blurred a little first: thin lines resampled to another resolution
    land a pixel apart.
    """
    blur = ImageFilter.GaussianBlur(2)
    crop = page.crop(rect).convert("L")
    white = Image.new("RGBA", figure.size, "white")
    drawn = Image.alpha_composite(white, figure.convert("RGBA")).convert("L")
    drawn = drawn.resize(crop.size, Image.LANCZOS)
    crop = np.asarray(crop.filter(blur), dtype=float)
    drawn = np.asarray(drawn.filter(blur), dtype=float)
    crop, drawn = crop - crop.mean(), drawn - drawn.mean()
    norm = np.sqrt(np.sum(crop**2) * np.sum(drawn**2))
    return float(np.sum(crop * drawn) / norm) if norm else 0.0


def test_pdf_shows_every_figure_on_its_own_page(seed_run, written):
    _, path = written
    document = pypdfium2.PdfDocument(path)
    scale = 2
    pages = []
    for page in document:
        width, height = page.get_size()
        text = page.get_textpage().get_text_range().replace("\r\n", " ")
        pages.append(
            ((width / 72, height / 72), page.render(scale=scale).to_pil(), text)
        )
    names = figure_files(seed_run)
    assert "seed" in pages[0][2] and "38,640 runs" in pages[0][2]
    assert "optimizer:" in pages[0][2]  # the config

    for name in names:
        figure = Image.open(os.path.join(seed_run, name))
        scores = []
        for size, image, _ in pages:
            left, bottom, width, height = report._image_rect(*figure.size, size)
            dots = 72 * scale
            rect = (
                round(left * dots),
                round((size[1] - bottom - height) * dots),
                round((left + width) * dots),
                round((size[1] - bottom) * dots),
            )
            scores.append(_correlation(image, rect, figure))
        best = int(np.argmax(scores))
        assert scores[best] > 0.95, (name, scores)
        assert sorted(scores)[-2] < scores[best] - 0.1, (name, scores)
        assert f"({name})" in pages[best][2]
        assert report.caption(name)[:60] in pages[best][2]
    document.close()


def test_figures_saved_as_pdf_are_redrawn_for_the_report(tmp_path, seed_run):
    # The seed run as `dynamics run --format pdf` writes it, without running
    # it again: its results and config, and its figures drawn as PDF.
    out = tmp_path / "pdf"
    out.mkdir()
    shutil.copytree(os.path.join(seed_run, "results.zarr"), out / "results.zarr")
    shutil.copy(os.path.join(seed_run, "config.yaml"), out)
    exp = zoom.read_source(str(out))
    api.write_figures(exp, dynamics.load(str(out)), str(out), "pdf")
    names = figure_files(out)
    assert len(names) == len(figure_files(seed_run))
    assert all(name.endswith(".pdf") for name in names)

    html, pdf = report.write_report(str(out))
    with open(html, encoding="utf-8") as f:
        page = _Page()
        page.feed(f.read())
    assert len(page.images) == len(page.captions) == len(names)
    assert all(src.startswith("data:image/png;base64,") for src in page.images)
    document = pypdfium2.PdfDocument(pdf)
    texts = [page.get_textpage().get_text_range() for page in document]
    for name in names:
        assert sum(f"({name})" in text for text in texts) == 1, name
    document.close()


def test_an_existing_report_is_replaced_only_with_force(seed_run, tmp_path):
    html, pdf = str(tmp_path / "r.html"), str(tmp_path / "r.pdf")
    report.write_report(seed_run, html=html, pdf=pdf)
    with open(html, "w") as f:
        f.write("old")

    with pytest.raises(ConfigError, match="r.html' already exists; pass --force"):
        report.write_report(seed_run, html=html, pdf=pdf)
    with open(html) as f:
        assert f.read() == "old"

    report.write_report(seed_run, html=html, pdf=pdf, force=True)
    with open(html, encoding="utf-8") as f:
        assert f.read().startswith("<!DOCTYPE html>")
    assert sorted(os.listdir(tmp_path)) == ["r.html", "r.pdf"]  # nothing partial


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=f"'{tmp_path}' is not a dynamics run"):
        report.write_report(str(tmp_path))
    missing = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=f"'{missing}' is not a folder"):
        report.write_report(missing)
    assert os.listdir(tmp_path) == []
