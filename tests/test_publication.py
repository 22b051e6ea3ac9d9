"""Figures for papers: sizes, dpi, vector output, palettes, labels, metadata."""

import itertools
import os
import re
import textwrap
import zlib

import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import to_rgb
from matplotlib.text import Text
from PIL import Image

import dynamics
from dynamics import ConfigError, diagrams, figures, fractal, schema, sharpness, theory
from dynamics import zoom as zooming
from dynamics.figures import PALETTES, Style

SWEEP = {
    "optimizer.learning_rate": {"logspace": [-1, 0.3], "num": 5},
    "start.w": [0.0, 1.0, 3.0],
}


@pytest.fixture(scope="module")
def runs():
    """One small seed sweep per figure size, the config's own style in each."""
    from tests.conftest import SEED

    made = {}
    for size in ("single", "double", [4.0, 3.0]):
        config = {**SEED, "sweep": SWEEP, "figures": {"size": size, "dpi": 120}}
        exp = dynamics.load_config(config)
        made[str(size)] = exp, dynamics.run(exp)
    return made


def every_figure(exp, ds, style=None):
    """Each plotting function of the package, drawn from ``exp`` and ``ds``."""
    kw = {} if style is None else {"style": style}
    orbit = ds.assign(orbit=ds["final_loss"].expand_dims(orbit_step=3, axis=-1))
    orbit["orbit"].attrs["of"] = "loss"
    basins = ds.drop_dims(["minimum", "parameter"], errors="ignore").assign(
        basin=ds["regime"] * 0,
        basin_minimum=(("minimum", "parameter"), [[2.0], [5.0]]),
        parameter=("parameter", ["w"]),
    )
    eos = sharpness.EdgeOfStability(
        np.arange(4),
        np.array([1.0, 0.5, 0.2, 0.1]),
        np.array([1.0, np.nan, 3, 4]),
        2.0,
        "2/η",
        False,
        "a title",
    )
    dim = fractal.Dimension(
        1.5, 1.4, 1.6, np.array([2, 4, 8]), np.array([90, 30, 11]), 2
    )
    refined = ds.assign(computed=ds["regime"] >= 0)
    return {
        "stability_map": dynamics.plot_stability_map(ds, **kw),
        "period_map": diagrams.plot_period_map(ds, **kw),
        "bifurcation": diagrams.plot_bifurcation(orbit, **kw),
        "basin_map": diagrams.plot_basin_map(basins, **kw),
        "theory_overlay": theory.plot_theory_overlay(ds, exp, **kw),
        "cost_tangent": dynamics.plot_cost_tangent(exp, **kw),
        "descent_path": dynamics.plot_descent_path(exp, **kw),
        "edge_of_stability": sharpness.plot_edge_of_stability(
            eos, style=style or Style.of(exp)
        ),
        "box_counts": fractal.plot_box_counts(dim, style=style or Style.of(exp)),
        "refinement": zooming.plot_refinement(refined, **kw),
    }


def drawn_boxes(fig):
    """The window boxes of every visible text of a drawn figure but the tick
    labels, and of each axes with its tick labels."""
    renderer = FigureCanvasAgg(fig).get_renderer()
    fig.draw(renderer)
    ticks = set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            for tick in axis.get_major_ticks() + axis.get_minor_ticks():
                ticks.update((tick.label1, tick.label2))
    texts = [
        (text.get_text(), text.get_window_extent(renderer))
        for text in fig.findobj(Text)
        if text not in ticks and text.get_visible() and text.get_text().strip()
    ]
    axes = [(f"axes {i}", ax.get_tightbbox(renderer)) for i, ax in enumerate(fig.axes)]
    return texts, axes


@pytest.mark.parametrize("size", ["single", "double", "[4.0, 3.0]"])
def test_every_figure_takes_the_configs_size_and_its_text_fits(runs, size):
    exp, ds = runs[size]
    style = Style.of(ds)
    width = {"single": 3.5, "double": 7.2}.get(size, 4.0)
    assert style.width == width and style.points == (8 if width < 5 else 10)
    for name, fig in every_figure(exp, ds).items():
        assert fig.get_size_inches()[0] == pytest.approx(width), name
        if size == "[4.0, 3.0]":
            assert fig.get_size_inches()[1] == pytest.approx(3.0), name
        canvas = fig.bbox
        texts, axes = drawn_boxes(fig)
        for text, box in texts + axes:
            inside = (
                box.x0 >= canvas.x0 - 1
                and box.x1 <= canvas.x1 + 1
                and box.y0 >= canvas.y0 - 1
                and box.y1 <= canvas.y1 + 1
            )
            assert inside, (name, text, box.bounds, canvas.bounds)
        for (a, box_a), (b, box_b) in itertools.combinations(texts, 2):
            across = min(box_a.x1, box_b.x1) - max(box_a.x0, box_b.x0)
            up = min(box_a.y1, box_b.y1) - max(box_a.y0, box_b.y0)
            assert min(across, up) <= 1.5, (name, a, b)


def test_the_notebook_figure_is_the_saved_one(runs, tmp_path):
    exp, ds = runs["single"]
    fig = dynamics.plot_stability_map(ds)  # no style: the config's
    ax = fig.axes[0]
    assert ax.xaxis.label.get_fontsize() == 8.0
    assert fig.legends and ax.get_legend() is None  # under the map when narrow
    path = figures.save(fig, str(tmp_path), "map", "png", dpi=200)
    height = fig.get_size_inches()[1]
    with Image.open(path) as image:
        assert image.size == (round(3.5 * 200), round(height * 200))
    fig = dynamics.plot_stability_map(runs["[4.0, 3.0]"][1])
    with Image.open(figures.save(fig, str(tmp_path), "custom", dpi=75)) as image:
        assert image.size == (300, 225)


def test_an_explicit_style_wins_over_the_config(runs):
    exp, ds = runs["single"]
    style = Style(size="double", palette="tol_bright", font_size=12)
    fig = dynamics.plot_stability_map(ds, style=style)
    assert fig.get_size_inches()[0] == 7.2
    assert fig.axes[0].xaxis.label.get_fontsize() == 12
    colours = fig.axes[0].collections[0].get_cmap().colors
    assert [c for c in colours] == [c for _, c in PALETTES["tol_bright"].classes()]


def read(path, binary=False):
    if binary:
        with open(path, "rb") as f:
            return f.read()
    with open(path, encoding="utf-8") as f:
        return f.read()


def pdf_objects(data):
    """The PDF's objects and its decompressed streams, as text."""
    parts = [data.decode("latin-1")]
    for match in re.finditer(rb"stream\r?\n(.*?)endstream", data, re.S):
        try:
            parts.append(zlib.decompress(match.group(1)).decode("latin-1"))
        except zlib.error:
            pass
    return "\n".join(parts)


def test_line_figures_are_vector_and_maps_raster_only_their_cells(runs, tmp_path):
    exp, ds = runs["double"]
    line = dynamics.plot_cost_tangent(exp)
    pdf = read(figures.save(line, str(tmp_path), "line", "pdf"), binary=True)
    text = pdf_objects(pdf)
    assert "/Subtype /Image" not in text
    assert "/FontFile2" in text  # TrueType (Type 42), not Type 3
    assert " l\n" in text or " l " in text  # drawn with path operators
    svg = read(figures.save(line, str(tmp_path), "line", "svg"))
    assert "<image" not in svg and svg.count("<path") > 10

    cells = dynamics.plot_stability_map(ds)
    text = pdf_objects(read(figures.save(cells, str(tmp_path), "m", "pdf"), True))
    assert text.count("/Subtype /Image") == 1  # the cells, nothing else


def test_metadata_is_stored_in_each_format_and_written_atomically(runs, tmp_path):
    exp, ds = runs["double"]
    fig = dynamics.plot_cost_tangent(exp)
    provenance = {
        "config_sha256": "ab" * 32,
        "command": "dynamics run my.yaml figures.size=single",
        "Title": "seed: cost and tangent",
        "jax_version": "0.4.30 (β)",
    }
    png = figures.save(
        fig, str(tmp_path), "f", "png", description="cfg", metadata=provenance
    )
    with Image.open(png) as image:
        chunks = dict(image.text)
    assert chunks["Description"] == "cfg"
    assert chunks["Software"].startswith("dynamics ")
    for key, value in provenance.items():
        assert chunks[key] == value

    pdf = figures.save(fig, str(tmp_path), "f", "pdf", metadata=provenance)
    info = pdf_info(read(pdf, binary=True))
    for key, value in provenance.items():
        assert info[key] == value, key

    svg = figures.save(
        fig, str(tmp_path), "f", "svg", description="cfg", metadata=provenance
    )
    text = read(svg)
    assert "<dc:title>seed: cost and tangent</dc:title>" in text
    description = re.search(r"<dc:description>(.*?)</dc:description>", text, re.S)
    assert description.group(1).splitlines() == [
        "cfg",
        f"config_sha256: {'ab' * 32}",
        "command: dynamics run my.yaml figures.size=single",
        "jax_version: 0.4.30 (β)",
    ]
    assert sorted(os.listdir(tmp_path)) == ["f.pdf", "f.png", "f.svg"]

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    fig.savefig = broken
    with pytest.raises(RuntimeError):
        figures.save(fig, str(tmp_path), "g", "png")
    assert sorted(os.listdir(tmp_path)) == ["f.pdf", "f.png", "f.svg"]


def pdf_info(data):
    """The document information dictionary of a PDF, read from its bytes."""
    trailer = data[data.rindex(b"trailer") :]
    number = re.search(rb"/Info (\d+) 0 R", trailer).group(1)
    body = re.search(rb"\n" + number + rb" 0 obj\s*<<(.*?)>>\s*endobj", data, re.S)
    body = body.group(1)
    info, i = {}, 0
    while (name := re.compile(rb"/([^\s/(<>\[\]]+)\s*").search(body, i)) is not None:
        key = re.sub(rb"#([0-9A-Fa-f]{2})", lambda m: bytes([int(m[1], 16)]), name[1])
        value, i = _pdf_string(body, name.end())
        info[key.decode()] = value
    return info


def _pdf_string(body, i):
    """The literal string ``( ... )`` at ``body[i]``, decoded, and where it ends."""
    if body[i : i + 1] != b"(":
        end = re.compile(rb"[\s/>]").search(body, i + 1)
        return body[i : end.start() if end else len(body)].decode(), (
            end.start() if end else len(body)
        )
    out, depth, i = bytearray(), 1, i + 1
    escapes = {b"n": b"\n", b"r": b"\r", b"t": b"\t", b"b": b"\b", b"f": b"\f"}
    while depth:
        char = body[i : i + 1]
        if char == b"\\":
            following = body[i + 1 : i + 2]
            octal = re.match(rb"[0-7]{1,3}", body[i + 1 : i + 4])
            if octal:
                out.append(int(octal[0], 8))
                i += 1 + len(octal[0])
                continue
            out += escapes.get(following, following)
            i += 2
            continue
        depth += {b"(": 1, b")": -1}.get(char, 0)
        if depth:
            out += char
        i += 1
    raw = bytes(out)
    text = raw[2:].decode("utf-16-be") if raw[:2] == b"\xfe\xff" else raw.decode()
    return text, i


# Colour vision deficiency: Machado, Oliveira and Fernandes (2009), "A
# physiologically-based model for simulation of color vision deficiency", IEEE
# TVCG 15(6), Table 1 at severity 1.0 (dichromacy), applied to linear sRGB.
MACHADO_2009 = {
    "protanopia": [
        [0.152286, 1.052583, -0.204868],
        [0.114503, 0.786281, 0.099216],
        [-0.003882, -0.048116, 1.051998],
    ],
    "deuteranopia": [
        [0.367322, 0.860646, -0.227968],
        [0.280085, 0.672501, 0.047413],
        [-0.011820, 0.042940, 0.968881],
    ],
    "normal vision": np.eye(3),
}
#: Least CIEDE2000 difference between any two colours of a palette.
APART = {"normal vision": 15.0, "protanopia": 10.0, "deuteranopia": 10.0}


def cielab(hex_colour, matrix):
    """CIELAB (D65) of a colour as seen through a CVD simulation matrix."""
    srgb = np.array(to_rgb(hex_colour))
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(np.asarray(matrix) @ linear, 0.0, 1.0)
    xyz = (
        np.array(
            [
                [0.4124564, 0.3575761, 0.1804375],
                [0.2126729, 0.7151522, 0.0721750],
                [0.0193339, 0.1191920, 0.9503041],
            ]
        )
        @ linear
        / np.array([0.95047, 1.0, 1.08883])
    )
    f = np.where(xyz > 216 / 24389, np.cbrt(xyz), (24389 / 27 * xyz + 16) / 116)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def ciede2000(lab1, lab2):
    """The CIEDE2000 colour difference (Sharma, Wu and Dalal 2005)."""
    (l1, a1, b1), (l2, a2, b2) = lab1, lab2
    mean_c = (np.hypot(a1, b1) + np.hypot(a2, b2)) / 2
    g = 0.5 * (1 - np.sqrt(mean_c**7 / (mean_c**7 + 25.0**7)))
    a1, a2 = (1 + g) * a1, (1 + g) * a2
    c1, c2 = np.hypot(a1, b1), np.hypot(a2, b2)
    h1, h2 = np.degrees(np.arctan2(b1, a1)) % 360, np.degrees(np.arctan2(b2, a2)) % 360
    dh = 0.0 if c1 * c2 == 0 else (h2 - h1 + 180) % 360 - 180
    big_dh = 2 * np.sqrt(c1 * c2) * np.sin(np.radians(dh / 2))
    mean_l, mean_c = (l1 + l2) / 2, (c1 + c2) / 2
    if c1 * c2 == 0:
        mean_h = h1 + h2
    elif abs(h1 - h2) <= 180:
        mean_h = (h1 + h2) / 2
    else:
        mean_h = (h1 + h2 + 360) / 2 if h1 + h2 < 360 else (h1 + h2 - 360) / 2
    t = (
        1
        - 0.17 * np.cos(np.radians(mean_h - 30))
        + 0.24 * np.cos(np.radians(2 * mean_h))
        + 0.32 * np.cos(np.radians(3 * mean_h + 6))
        - 0.20 * np.cos(np.radians(4 * mean_h - 63))
    )
    s_l = 1 + 0.015 * (mean_l - 50) ** 2 / np.sqrt(20 + (mean_l - 50) ** 2)
    s_c, s_h = 1 + 0.045 * mean_c, 1 + 0.015 * mean_c * t
    rotation = (
        -2
        * np.sqrt(mean_c**7 / (mean_c**7 + 25.0**7))
        * np.sin(np.radians(60 * np.exp(-(((mean_h - 275) / 25) ** 2))))
    )
    dl, dc, dh = (l2 - l1) / s_l, (c2 - c1) / s_c, big_dh / s_h
    return float(np.sqrt(dl**2 + dc**2 + dh**2 + rotation * dc * dh))


def test_ciede2000_matches_the_published_test_data():
    # Sharma, Wu and Dalal (2005), Table 1, pairs 1 and 17.
    assert ciede2000((50, 2.6772, -79.7751), (50, 0, -82.7485)) == pytest.approx(
        2.0425, abs=1e-4
    )
    assert ciede2000((50, 2.5, 0), (73, 25, -18)) == pytest.approx(27.1492, abs=1e-4)


@pytest.mark.parametrize("vision", sorted(APART))
@pytest.mark.parametrize("name", sorted(PALETTES))
def test_every_palette_stays_distinguishable(name, vision):
    palette = PALETTES[name]
    colours = [colour for _, colour in palette.classes()] + [palette.extra]
    seen = {colour: cielab(colour, MACHADO_2009[vision]) for colour in colours}
    for a, b in itertools.combinations(colours, 2):
        assert ciede2000(seen[a], seen[b]) >= APART[vision], (name, vision, a, b)


def test_the_schema_knows_every_palette_and_size():
    assert schema.FIGURE_PALETTES == tuple(PALETTES)
    assert schema.FIGURE_SIZES == tuple(figures.WIDTHS)


@pytest.mark.parametrize(
    "key, log, label",
    [
        ("optimizer.learning_rate", True, "learning rate α (log scale)"),
        ("optimizer.learning_rate", False, "learning rate α"),
        ("start.w", False, "start w"),
        ("optimizer.momentum", False, "momentum β"),
        ("optimizer.b1", True, "first-moment decay β₁ (log scale)"),
        ("objective.curvature", False, "curvature"),
        ("optimizer.learning_rate.1", False, "learning rate α of group 1"),
        ("optimizer.schedule.warmup_steps", False, "schedule warmup steps"),
    ],
)
def test_axis_labels_name_the_hyperparameter_its_scale_and_key(key, log, label):
    assert figures.axis_label(key, log) == f"{label}\n{key}"


def test_a_map_labels_its_axes_in_words_and_keys(runs):
    ax = dynamics.plot_stability_map(runs["double"][1]).axes[0]
    assert ax.get_xlabel() == "learning rate α (log scale)\noptimizer.learning_rate"
    assert ax.get_xscale() == "log"
    assert ax.get_ylabel() == "start w\nstart.w"


GOOD = """\
objective: {expr: "(w - 2)**2 + 1"}
start: {w: 0.0}
optimizer: {name: sgd, learning_rate: 0.1}
figures:
"""


@pytest.mark.parametrize(
    "setting, fragments",
    [
        ("size: triple", ["size", "single, double or [width, height]", "'triple'"]),
        ("size: [3.5]", ["size", "got a list [3.5]"]),
        ("size: [0.2, 3]", ["size.0", "not a figure side; use 1 to 30 inches"]),
        ("size: [wide, 3]", ["size.0", "expected a number"]),
        ("palette: viridis", ["palette", "'viridis' is not one of: okabe_ito"]),
        ("palette: okabe-ito", ["did you mean 'okabe_ito'?"]),
        ("font_size: 100", ["font_size", "not a font size; use 4 to 36 points"]),
        ("font_size: big", ["font_size", "expected a number, got the text 'big'"]),
        ("format: [pdf, jpg]", ["format.1", "'jpg' is not one of: png, svg, pdf"]),
        ("format: [pdf, pdf]", ["format", "names a format twice"]),
        ("format: []", ["format", "empty list"]),
        ("colour: red", ["unknown key 'colour'"]),
    ],
)
def test_bad_figure_settings_get_one_message_with_the_line(
    tmp_path, setting, fragments
):
    path = tmp_path / "exp.yaml"
    path.write_text(GOOD + f"  {setting}\n")
    with pytest.raises(ConfigError) as caught:
        dynamics.load_config(str(path))
    message = str(caught.value)
    assert "exp.yaml:5:" in message and message.count("exp.yaml:") == 1, message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_good_figure_settings_are_read_with_their_defaults(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(
        GOOD + "  {}\n".replace("  {}", "  size: [3.5, 2.5]\n  format: [pdf, png]")
    )
    figures_section = dynamics.load_config(str(path)).config["figures"]
    assert figures_section == {
        "format": ["pdf", "png"],
        "dpi": 150,
        "size": [3.5, 2.5],
        "palette": "okabe_ito",
        "font_size": None,
    }
    path.write_text(textwrap.dedent(GOOD).replace("figures:\n", ""))
    assert dynamics.load_config(str(path)).config["figures"] == {
        "format": "png",
        "dpi": 150,
        "size": "double",
        "palette": "okabe_ito",
        "font_size": None,
    }


def test_save_all_writes_each_format(runs, tmp_path):
    exp, _ = runs["single"]
    fig = dynamics.plot_cost_tangent(exp)
    paths = figures.save_all(fig, str(tmp_path), "t", ["pdf", "png"], dpi=60)
    assert [os.path.basename(p) for p in paths] == ["t.pdf", "t.png"]
    assert all(os.path.getsize(p) > 0 for p in paths)
