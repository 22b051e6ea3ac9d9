"""Configs: what is read, and every kind of bad input a clear message."""

import os
import subprocess
import sys
import textwrap

import pytest

from dynamics import ConfigError, cli, load_config

GOOD = """\
name: good
objective:
  expr: "(w - 2)**2 + 1"
start:
  w: 0.0
optimizer:
  name: sgd
  learning_rate: 0.1
steps: 200
sweep:
  optimizer.learning_rate: {linspace: [0.01, 1.2], num: 240}
  start.w: {linspace: [-2.0, 6.0], num: 161}
"""


def write(tmp_path, text, name="exp.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def replace(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


def test_the_issue_example_reads_as_written(tmp_path):
    exp = load_config(write(tmp_path, GOOD))
    assert exp.name == "good" and exp.steps == 200 and exp.dtype == "float32"
    assert [axis.key for axis in exp.sweep] == ["optimizer.learning_rate", "start.w"]
    assert exp.shape == (240, 161)
    assert exp.sweep[0].values[0] == 0.01 and exp.sweep[0].values[-1] == 1.2


def test_exponent_form_numbers_are_floats(tmp_path):
    exp = load_config(
        write(tmp_path, replace("learning_rate: 0.1", "learning_rate: 1e-3"))
    )
    assert exp.config["optimizer"]["learning_rate"] == 0.001
    exp = load_config(
        write(
            tmp_path,
            replace("{linspace: [0.01, 1.2], num: 240}", "{logspace: [-3, 0], num: 4}"),
        )
    )
    assert exp.sweep[0].values.tolist() == pytest.approx([1e-3, 1e-2, 1e-1, 1.0])
    assert exp.sweep[0].scale == "log"


def test_overrides_replace_values_and_sweep_settings(tmp_path):
    path = write(tmp_path, GOOD)
    exp = load_config(
        path,
        [
            "steps=500",
            "sweep.start.w.num=64",
            "optimizer.momentum=0.9",
            "dtype=float64",
            "sweep.optimizer.learning_rate={logspace: [-2, 0], num: 3}",
        ],
    )
    assert exp.steps == 500 and exp.dtype == "float64"
    assert exp.shape == (3, 64)
    assert exp.config["optimizer"]["momentum"] == 0.9


def test_default_config_is_shipped_in_the_package():
    exp = load_config(None)
    assert exp.name == "seed-quadratic" and exp.shape == (240, 161)
    assert exp.config["objective"]["expr"] == "(w - 2)**2 + 1"


# Bad input: each case is (file text, what the message must say).
BAD = {
    "yaml syntax": (replace("  w: 0.0", "  w: [0.0"), ["exp.yaml:", "YAML syntax"]),
    "tab": (replace("  w: 0.0", "\tw: 0.0"), ["exp.yaml:5:", "tabs"]),
    "duplicate key": (GOOD + "steps: 300\n", ["exp.yaml:13:", "steps", "line 9"]),
    "unknown top key": (
        GOOD + "stepz: 3\n",
        ["exp.yaml:13:", "stepz", "did you mean 'steps'"],
    ),
    "unknown nested key": (
        replace("  learning_rate: 0.1", "  learnig_rate: 0.1"),
        ["exp.yaml:8:", "optimizer.learnig_rate", "did you mean 'learning_rate'"],
    ),
    "unknown axis key": (
        replace(
            "{linspace: [0.01, 1.2], num: 240}", "{linspce: [0.01, 1.2], num: 240}"
        ),
        ["exp.yaml:11:", "linspce", "did you mean 'linspace'"],
    ),
    "wrong type": (
        replace("steps: 200", "steps: many"),
        ["exp.yaml:9:", "steps", "whole number", "'many'"],
    ),
    "yaml 1.1 boolean": (
        replace("learning_rate: 0.1", "learning_rate: off"),
        ["exp.yaml:8:", "'off'", "boolean"],
    ),
    "negative learning rate": (
        replace("learning_rate: 0.1", "learning_rate: -0.1"),
        ["exp.yaml:8:", "negative"],
    ),
    "momentum out of range": (
        replace("  learning_rate: 0.1", "  learning_rate: 0.1\n  momentum: 1.0"),
        ["exp.yaml:9:", "momentum", "[0, 1)"],
    ),
    "num zero": (replace("num: 161", "num: 0"), ["exp.yaml:12:", "num", "at least 1"]),
    "sweep of a missing key": (
        replace("start.w: {", "start.v: {"),
        [
            "exp.yaml:12:",
            "'start.v' is not a numeric config value",
            "did you mean 'start.w'",
        ],
    ),
    "sweep of steps": (
        replace("start.w: {linspace: [-2.0, 6.0], num: 161}", "steps: [1, 2]"),
        ["exp.yaml:12:", "cannot be swept"],
    ),
    "swept value out of range": (
        replace("[0.01, 1.2]", "[-1.0, 1.2]"),
        ["exp.yaml:11:", "negative"],
    ),
    "formula unknown name": (
        replace('"(w - 2)**2 + 1"', '"(w - 2)**2 + z"'),
        ["exp.yaml:3:", "objective.expr", "unknown name 'z'"],
    ),
    "formula attribute": (
        replace('"(w - 2)**2 + 1"', '"w.real"'),
        ["exp.yaml:3:", "attribute access"],
    ),
    "formula import": (
        replace('"(w - 2)**2 + 1"', "\"__import__('os')\""),
        ["exp.yaml:3:", "unknown function '__import__'"],
    ),
    "formula lambda": (
        replace('"(w - 2)**2 + 1"', '"(lambda: 1)()"'),
        ["exp.yaml:3:", "only whitelisted functions"],
    ),
    "formula caret": (
        replace('"(w - 2)**2 + 1"', '"(w - 2)^2"'),
        ["exp.yaml:3:", "write '**'"],
    ),
    "formula syntax": (
        replace('"(w - 2)**2 + 1"', '"(w - 2**2"'),
        ["exp.yaml:3:", "cannot read the formula"],
    ),
    "steps too few": (replace("steps: 200", "steps: 2"), ["exp.yaml:9:", "at least 8"]),
    "value beyond float32": (
        replace("[-2.0, 6.0]", "[-2.0, 1e300]"),
        ["exp.yaml:12:", "does not fit in float32", "float64"],
    ),
    "infinite number": (
        replace("learning_rate: 0.1", "learning_rate: .inf"),
        ["exp.yaml:8:", "finite"],
    ),
    "nan number": (
        replace("learning_rate: 0.1", "learning_rate: .nan"),
        ["exp.yaml:8:", "finite"],
    ),
    "logspace overflow": (
        replace("{linspace: [0.01, 1.2], num: 240}", "{logspace: [-3, 400], num: 5}"),
        ["exp.yaml:11:", "base-10 exponents"],
    ),
    "recursive alias": ("a: &a [*a]\n", ["exp.yaml:1:", "recursive"]),
    "alias bomb": (
        "\n".join(
            [f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
        ).replace("*a0", "x")
        + "\n",
        ["exp.yaml:", "aliases expanded"],
    ),
    "name with a slash": (
        replace("name: good", "name: ../escape"),
        ["exp.yaml:1:", "output folder"],
    ),
    "keyword parameter": (
        replace("  w: 0.0", "  w: 0.0\n  lambda: 1.0"),
        ["exp.yaml:6:", "cannot be a parameter name"],
    ),
    "constant parameter": (
        replace("  w: 0.0", "  w: 0.0\n  pi: 1.0"),
        ["exp.yaml:6:", "cannot be a parameter name"],
    ),
    "empty start": (replace("  w: 0.0\n", ""), ["exp.yaml:4:", "start"]),
    "empty formula": (replace('"(w - 2)**2 + 1"', '""'), ["exp.yaml:3:", "empty"]),
    "orbit of an unknown parameter": (
        GOOD + "analysis: {orbit: v}\n",
        ["exp.yaml:13:", "analysis.orbit", "'v'", "one of: loss, w"],
    ),
    "misspelt analysis key": (
        GOOD + "analysis: {lyapunof: false}\n",
        ["exp.yaml:13:", "did you mean 'lyapunov'"],
    ),
    "analysis switch not a boolean": (
        GOOD + "analysis: {sharpness: 1}\n",
        ["exp.yaml:13:", "analysis.sharpness", "true or false"],
    ),
    "sweep of an analysis key": (
        replace(
            "start.w: {linspace: [-2.0, 6.0], num: 161}",
            "analysis.sharpness_every: [1, 2]",
        ),
        ["exp.yaml:12:", "chooses what the program computes"],
    ),
    "too many dots per inch": (
        GOOD + "figures: {dpi: 100000}\n",
        ["exp.yaml:13:", "at most 1,200"],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_gets_one_clear_message_and_exit_2(tmp_path, capsys, case):
    text, expected = BAD[case]
    path = write(tmp_path, text)
    out = tmp_path / "out"
    code = cli.main(["run", path, "-o", str(out)])
    captured = capsys.readouterr()
    assert code == 2
    assert "Traceback" not in captured.err
    assert captured.err.startswith("dynamics: error: ")
    for fragment in expected:
        assert fragment in captured.err, (fragment, captured.err)
    assert not out.exists()
    assert os.listdir(tmp_path) == ["exp.yaml"]


def test_every_problem_in_a_file_is_listed(tmp_path):
    text = replace("steps: 200", "steps: -1\nstepz: 2").replace(
        "learning_rate: 0.1", "learning_rate: x"
    )
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, text))
    assert len(err.value.problems) == 3
    assert {p.split(":")[1] for p in err.value.problems} == {"8", "9", "10"}


@pytest.mark.parametrize(
    "argument, expected",
    [
        ("steps", "overrides are written key=value"),
        ("nosuch.key=1", "unknown key 'nosuch'"),
        ("sweep.start.w.num=abc", "command-line override 'sweep.start.w.num=abc'"),
        ("optimizer.learning_rate=[1", "YAML syntax"),
        ("steps=", "no value after '='"),
        (
            "sweep.start.w.linspace.0=abc",
            "command-line override 'sweep.start.w.linspace.0",
        ),
    ],
)
def test_bad_overrides_name_the_argument(tmp_path, capsys, argument, expected):
    path = write(tmp_path, GOOD)
    code = cli.main(["run", path, argument, "-o", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert expected in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_missing_config_file(tmp_path, capsys):
    assert cli.main(["run", str(tmp_path / "nope.yaml")]) == 2
    assert "nope.yaml: no such config file" in capsys.readouterr().err


def test_a_real_process_exits_2_without_traceback(tmp_path):
    path = write(tmp_path, replace("steps: 200", "steps: many"))
    result = subprocess.run(
        [sys.executable, "-m", "dynamics", "run", path, "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "exp.yaml:9: steps: expected a whole number" in result.stderr
    assert result.stdout == ""
    assert sorted(os.listdir(tmp_path)) == ["exp.yaml"]


def test_overrides_may_follow_options(tmp_path):
    path = write(tmp_path, GOOD)
    out = tmp_path / "out"
    code = cli.main(
        [
            "run",
            path,
            "-o",
            str(out),
            "-q",
            "steps=8",
            "sweep.optimizer.learning_rate=[0.1]",
            "sweep.start.w.num=2",
        ]
    )
    assert code == 0
    assert load_config(str(out / "config.yaml")).steps == 8


def test_leading_dot_exponents_are_floats(tmp_path):
    exp = load_config(
        write(tmp_path, replace("learning_rate: 0.1", "learning_rate: .5e-1"))
    )
    assert exp.config["optimizer"]["learning_rate"] == 0.05


def test_signed_fractions_without_a_leading_digit_are_floats(tmp_path):
    # PyYAML reads `.5` as 0.5 but leaves `-.5` and `+.5` as text.
    exp = load_config(
        write(tmp_path, replace("learning_rate: 0.1", "learning_rate: +.5")),
        overrides="start.w=-.25",
    )
    assert exp.config["optimizer"]["learning_rate"] == 0.5
    assert exp.config["start"]["w"] == -0.25


def test_mappings_from_python_may_hold_numpy_values_and_tuples():
    import numpy as np

    exp = load_config(
        {
            "objective": {"expr": "w**2"},
            "start": {"w": np.float32(1)},
            "optimizer": {"learning_rate": np.float64(0.1)},
            "sweep": {
                "start.w": np.linspace(0, 1, 3),
                "optimizer.learning_rate": (0.1, 0.2),
            },
        },
        overrides="steps=20",
    )
    assert exp.shape == (3, 2) and exp.steps == 20
