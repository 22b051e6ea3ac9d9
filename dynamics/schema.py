"""The config schema: every key at every depth checked, every problem located.

:func:`check` turns a raw mapping into the normalized config (defaults filled
in) and the sweep axes, or raises one :class:`ConfigError` listing every
problem, each with its file and line (or command-line argument) and the fix.
"""

import copy
import difflib
import keyword
import math
import re

import jax
import numpy as np

from dynamics import formula, objectives
from dynamics.errors import ConfigError
from dynamics.optimizers import OPTIMIZERS, SCHEDULES

DTYPES = ("float32", "float64")
FIGURE_FORMATS = ("png", "svg", "pdf")
#: Named figure sizes (one journal column, the full text width); see
#: dynamics.figures.WIDTHS.
FIGURE_SIZES = ("single", "double")
#: Colour-blind-safe palettes; see dynamics.figures.PALETTES.
FIGURE_PALETTES = ("okabe_ito", "tol_bright", "tol_muted")
#: Figure sides in inches, and font sizes in points, that are accepted.
FIGURE_INCHES = (1.0, 30.0)
FIGURE_POINTS = (4.0, 36.0)
TOP_KEYS = (
    "name",
    "objective",
    "start",
    "optimizer",
    "steps",
    "sweep",
    "dtype",
    "chunk_size",
    "classify",
    "analysis",
    "figures",
)
OBJECTIVE_KINDS = ("expr", "name", "model", "callable")
MIN_STEPS, MAX_STEPS = 8, 10**8
MAX_AXIS = 10**8
MAX_DPI = 1200
#: What the engine measures beyond the regime, each with its default.
ANALYSIS = {
    "lyapunov": True,
    "sharpness": False,
    "sharpness_every": 10,
    "sharpness_iterations": 20,
    "orbit": None,
    "basins": True,
}
_UNSWEEPABLE = {
    "steps": "sets the length of the scan",
    "chunk_size": "sets how many runs go through at once",
    "dtype": "sets the precision of the whole program",
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_RESERVED = set(formula.FUNCTIONS) | set(formula.CONSTANTS)


def check(data, origins, stem):
    """Checks a raw config mapping.

    Returns:
      ``(config, axes)``: the normalized config and a list of
      ``(key, values, scale)`` for each swept key, in the order written.
    """
    return _Checker(origins).experiment(data, stem)


class _Checker:
    """Checks a config mapping, collecting every problem before raising."""

    def __init__(self, origins):
        self.origins = origins
        self.problems = []
        # A misspelt key is reported once: not again as the key it meant,
        # missing. These are the meant keys, and where "missing" was said.
        self.meant = set()
        self.missing_at = {}
        self.targets = {}  # sweepable dotted key -> check of one value
        self.fixed = {}  # known but unsweepable dotted key -> why

    def problem(self, path, message):
        self.problems.append(f"{self.origins.where(path)}: {message}")

    def missing(self, path, message):
        self.missing_at[len(self.problems)] = path
        self.problem(path, message)

    def done(self):
        if self.problems:
            raise ConfigError(
                [
                    problem
                    for i, problem in enumerate(self.problems)
                    if self.missing_at.get(i) not in self.meant
                ]
            )

    def experiment(self, data, stem):
        self.keys(data, (), TOP_KEYS)
        name = self.text(data, ("name",), default=stem)
        if name is not None and not _NAME.match(name):
            self.problem(
                ("name",),
                f"'{name}' names the output folder: use letters, "
                "digits, '.', '_' and '-', starting with a letter or digit",
            )
        objective, family = self.objective(data)
        config = {
            "name": name,
            "objective": objective,
            "start": self.start(data, objective, family),
            "optimizer": self.optimizer(data),
            "steps": self.integer(
                data,
                ("steps",),
                200,
                MIN_STEPS,
                MAX_STEPS,
                why="the regime is read from the last steps",
            ),
            "dtype": self.choice(data, ("dtype",), DTYPES, default="float32"),
            "chunk_size": self.integer(data, ("chunk_size",), None, 1, 2**24),
            "classify": self.classify(data),
            "analysis": self.analysis(data),
            "figures": self.figures(data),
        }
        if not self.problems:
            self.groups(config)
            self.fits(config)
        sweep = self.section(data, ("sweep",), required=False)
        config["sweep"] = sweep
        axes = [self.axis(config, key, spec) for key, spec in sweep.items()]
        self.done()
        self.build(config, axes)
        self.done()
        runs = math.prod(len(values) for _, values, _ in axes)
        if runs > 2**31 - 1:
            self.problem(
                ("sweep",),
                f"the grid has {runs:,} runs, more than the "
                f"{2**31 - 1:,} one sweep can hold; split it",
            )
        self.done()
        return config, axes

    # Sections.

    def objective(self, data):
        path = ("objective",)
        section = self.section(data, path, required=True)
        kinds = [kind for kind in OBJECTIVE_KINDS if section.get(kind) is not None]
        if section and len(kinds) != 1:
            given = ", ".join(kinds) or "none"
            self.problem(
                path,
                "give exactly one of expr (a formula), name (a named "
                "function), model or callable; given: " + given,
            )
            self.keys(section, path, OBJECTIVE_KINDS)
            return {"expr": None}, None
        if not section:
            if isinstance(data, dict) and data.get("objective") == {}:
                self.problem(
                    path,
                    "the section is empty; give one of expr (a formula), name (a "
                    "named function), model or callable",
                )
            return {"expr": None}, None
        kind = kinds[0]
        if kind == "expr":
            self.keys(section, path, ("expr",))
            return {"expr": self.text(section, path + ("expr",), None, True)}, None
        if kind == "callable":
            self.keys(section, path, ("callable",))
            target = self.text(section, path + ("callable",), None, True)
            if target is not None:
                self.user_function(target)
            return {"callable": target}, None
        table = objectives.FAMILIES if kind == "name" else objectives.MODELS
        choice = self.choice(section, path + (kind,), tuple(table), default=None)
        family = table.get(choice)
        if family is None:
            return {kind: choice}, None
        self.keys(section, path, (kind,) + tuple(family.settings))
        out = {kind: choice}
        for key, setting in family.settings.items():
            out[key] = self.setting(section, path + (key,), setting)
            if setting.kind == "number":
                self.targets[f"objective.{key}"] = setting.check or _no_check
            else:
                self.fixed[f"objective.{key}"] = (
                    f"'objective.{key}' shapes the program or its data (array "
                    "sizes, layers, seeds), so it is fixed per config and cannot "
                    "be swept; run one config per value"
                )
        return out, family

    def user_function(self, target):
        path = ("objective", "callable")
        module_name, _, function_name = target.partition(":")
        if not module_name or not function_name:
            self.problem(path, f"'{target}' must be written 'package.module:function'")
            return
        try:
            objectives.user_function(target)
        except AttributeError as err:
            self.problem(path, str(err))
        except Exception as err:  # the user's module failed to import: say why
            hint = ""
            if isinstance(err, ModuleNotFoundError):
                hint = (
                    "; run from the folder that holds it, or add that folder "
                    "to PYTHONPATH"
                )
            self.problem(
                path,
                f"cannot import '{module_name}': {type(err).__name__}: {err}{hint}",
            )

    def start(self, data, objective, family):
        path = ("start",)
        needs_start = (
            objective.get("expr") is not None or objective.get("callable") is not None
        )
        section = self.section(data, path, required=needs_start)
        if family is not None:
            self.keys(section, path, tuple(family.start))
            start = {}
            for key, setting in family.start.items():
                start[key] = self.setting(section, path + (key,), setting)
                self.targets[f"start.{key}"] = setting.check or _no_check
            return start
        start = {}
        for name in section:
            where = path + (name,)
            if (
                not isinstance(name, str)
                or not name.isidentifier()
                or keyword.iskeyword(name)
                or name.startswith("_")
                or name in _RESERVED
            ):
                self.problem(
                    where,
                    f"'{name}' cannot be a parameter name: use "
                    "letters, digits and underscores, not a Python keyword, "
                    "function or constant name, not starting with _",
                )
                continue
            if objective.get("callable") is not None and isinstance(
                section[name], list
            ):
                start[name] = [
                    self.number({i: v}, where + (i,), None, True)
                    for i, v in enumerate(section[name])
                ]
                continue
            start[name] = self.number(section, where, None, True)
            self.targets[f"start.{name}"] = _no_check
        if "start" in data and not section:
            self.problem(
                path,
                "name at least one parameter and its starting value, such as 'w: 0.0'",
            )
        if objective.get("expr") is not None and start:
            self.formula(objective["expr"], start)
        return start

    def formula(self, expr, start):
        names = tuple(start)
        try:
            formula.parse(expr, names, where=self.origins.where(("objective", "expr")))
        except ConfigError as err:
            self.problems.extend(err.problems)
            return
        used = formula.names_used(expr)
        for name in names:
            if name not in used:
                self.problem(
                    ("start", name),
                    f"the parameter '{name}' does not "
                    "appear in objective.expr; remove it or use it",
                )

    def optimizer(self, data):
        path = ("optimizer",)
        section = self.section(data, path, required=True)
        name = self.choice(section, path + ("name",), tuple(OPTIMIZERS), "sgd")
        spec = OPTIMIZERS.get(name)
        if spec is None:
            return {"name": name, "learning_rate": None}
        self.keys(section, path, ("name", "schedule") + tuple(spec.hyperparameters))
        out = {"name": name}
        for key, field in spec.hyperparameters.items():
            where = path + (key,)
            if field.kind == "learning_rate":
                out[key] = self.learning_rate(section, where, field)
            elif field.kind == "bool":
                out[key] = self.boolean(section, where, field.default)
            elif field.kind == "integer":
                out[key] = self.integer(section, where, field.default, 0, 2**31 - 1)
            else:
                out[key] = self.number(
                    section, where, field.default, field.required, field.check
                )
                self.targets[f"optimizer.{key}"] = field.check or _no_check
        out["schedule"] = self.schedule(section)
        return out

    def learning_rate(self, section, path, field):
        value = section.get(path[-1])
        if isinstance(value, list):
            if not value:
                self.problem(path, "give one learning rate per parameter group, or one")
                return None
            rates = []
            last = len(value) - 1
            self.fixed["optimizer.learning_rate"] = (
                "optimizer.learning_rate is a list here (one per parameter "
                "group): sweep one entry, optimizer.learning_rate.0"
                + (f" to .{last}" if last else "")
                + ", or give a single learning rate to sweep it for every group"
            )
            for index in range(len(value), 64):
                self.fixed[f"optimizer.learning_rate.{index}"] = (
                    f"there are only {len(value)} learning rates (one per "
                    f"parameter group), so there is no index {index} to sweep"
                )
            for index, item in enumerate(value):
                rates.append(
                    self.number({index: item}, path + (index,), None, True, field.check)
                )
                self.targets[f"optimizer.learning_rate.{index}"] = field.check
            return rates
        self.targets["optimizer.learning_rate"] = field.check
        return self.number(section, path, None, True, field.check)

    def schedule(self, section):
        path = ("optimizer", "schedule")
        value = section.get("schedule")
        if value is None:
            return None
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, dict):
            self.problem(
                path,
                "a schedule is a mapping such as {name: warmup_cosine, "
                "warmup_steps: 10, decay_steps: 200}",
            )
            return None
        name = self.choice(value, path + ("name",), tuple(SCHEDULES), None)
        if name is None:
            if "name" not in value:
                self.problem(path, "missing 'name': one of " + ", ".join(SCHEDULES))
            return None
        schedule = SCHEDULES[name]
        self.keys(value, path, ("name",) + tuple(schedule.settings))
        out = {"name": name}
        for key, field in schedule.settings.items():
            out[key] = self.number(
                value, path + (key,), field.default, field.required, field.check
            )
            self.targets[f"optimizer.schedule.{key}"] = field.check or _no_check
        return out

    def classify(self, data):
        path = ("classify",)
        section = self.section(data, path, required=False)
        self.keys(section, path, ("rtol", "window"))
        return {
            "rtol": self.number(section, path + ("rtol",), 1e-4, check=_open_unit),
            "window": self.integer(section, path + ("window",), 128, 8, 4096),
        }

    def analysis(self, data):
        path = ("analysis",)
        section = self.section(data, path, required=False)
        self.keys(section, path, tuple(ANALYSIS))
        out = {
            "lyapunov": self.boolean(section, path + ("lyapunov",), True),
            "sharpness": self.boolean(section, path + ("sharpness",), False),
            "sharpness_every": self.integer(
                section, path + ("sharpness_every",), 10, 1, MAX_STEPS
            ),
            "sharpness_iterations": self.integer(
                section, path + ("sharpness_iterations",), 20, 2, 200
            ),
            "orbit": self.text(section, path + ("orbit",), None),
            "basins": self.boolean(section, path + ("basins",), True),
        }
        for key in ANALYSIS:
            self.fixed[f"analysis.{key}"] = (
                f"'analysis.{key}' chooses what the program computes and cannot "
                "be swept; run one config per value"
            )
        return out

    def figures(self, data):
        path = ("figures",)
        section = self.section(data, path, required=False)
        self.keys(section, path, ("format", "dpi", "size", "palette", "font_size"))
        inches, points = FIGURE_INCHES, FIGURE_POINTS

        def within(bounds, what, unit):
            def check(value):
                if bounds[0] <= value <= bounds[1]:
                    return None
                return f"is not a {what}; use {bounds[0]:g} to {bounds[1]:g} {unit}"

            return check

        def formats():
            # One format, or a list of them: each figure is written in each.
            key = path + ("format",)
            value = section.get("format") if isinstance(section, dict) else None
            if not isinstance(value, list):
                return self.choice(section, key, FIGURE_FORMATS, "png")
            if not value:
                self.problem(
                    key,
                    "is an empty list; give one or more of: "
                    + ", ".join(FIGURE_FORMATS),
                )
                return "png"
            chosen = [
                self.choice({i: v}, key + (i,), FIGURE_FORMATS, None)
                for i, v in enumerate(value)
            ]
            if len({str(v) for v in value}) < len(value):
                self.problem(key, f"names a format twice: {value}")
            return [fmt for fmt in chosen if fmt is not None] or "png"

        def size():
            # single, double or [width, height] in inches.
            key = path + ("size",)
            present, value = self.present(section, key, "double", False)
            if not present:
                return value
            if isinstance(value, list) and len(value) == 2:
                check = within(inches, "figure side", "inches")
                sides = [
                    self.number({i: v}, key + (i,), None, True, check)
                    for i, v in enumerate(value)
                ]
                if all(side is not None and not check(side) for side in sides):
                    return sides
                return "double"
            if value not in FIGURE_SIZES:
                self.problem(
                    key,
                    "expected single, double or [width, height] in inches, "
                    f"got {self.shown(key, value)}",
                )
                return "double"
            return value

        return {
            "format": formats(),
            "dpi": self.integer(section, path + ("dpi",), 150, 10, MAX_DPI),
            "size": size(),
            "palette": self.choice(
                section, path + ("palette",), FIGURE_PALETTES, "okabe_ito"
            ),
            "font_size": self.number(
                section,
                path + ("font_size",),
                None,
                check=within(points, "font size", "points"),
            ),
        }

    def build(self, config, axes):
        """Traces the objective once, with each swept key at its first value.

        Settings that only the objective can judge (an offset for a layer the
        network does not have, a batch larger than the data) and a user
        callable that does not trace, or does not return a real scalar, are
        reported here, before any work, instead of failing inside the sweep.
        """
        trial = substitute(config, {key: float(values[0]) for key, values, _ in axes})
        dtype = trial["dtype"]
        kind = next(
            k
            for k in ("expr", "callable", "name", "model")
            if trial["objective"].get(k) is not None
        )
        path = ("objective", kind)

        footprint = objectives.footprint(trial)
        if footprint is not None:
            from dynamics import resources

            size, words, fix = footprint
            memory = resources.available_memory()
            # Half the memory at most: the sweep itself needs the rest.
            if memory is not None and 2 * size > memory:
                self.problem(
                    ("objective",),
                    f"{words}: about {size / 2**30:,.1f} GiB to build, and "
                    f"{memory / 2**30:,.1f} GiB of memory is available; {fix}",
                )
                return

        shapes = {}

        def loss():
            problem = objectives.build(trial, dtype)
            shapes.update({k: jax.numpy.shape(v) for k, v in problem.params.items()})
            return problem.loss(problem.params)

        try:
            with jax.enable_x64(dtype == "float64"):
                value = jax.eval_shape(loss)
        except Exception as err:
            if kind != "callable":
                if isinstance(err, ValueError):  # a family's own check, its words
                    self.problem(path, str(err))
                    return
                raise
            # The user's callable: say what went wrong and what it must be.
            self.problem(
                path,
                f"'{trial['objective']['callable']}' failed when "
                f"traced by JAX: {type(err).__name__}: {_first_line(err)}; "
                "it must take a mapping from parameter name to array and "
                "return a scalar using jax.numpy only (no Python if on "
                "values, no numpy, no float())",
            )
            return
        orbit = config["analysis"]["orbit"]
        scalars = [name for name, shape in shapes.items() if shape == ()]
        if orbit is not None and orbit != "loss" and orbit not in scalars:
            choices = ", ".join(["loss"] + scalars)
            self.problem(
                ("analysis", "orbit"),
                f"'{orbit}' is not the loss or a scalar parameter of this "
                f"objective; use one of: {choices}",
            )
        if not hasattr(value, "shape"):
            self.problem(path, f"the loss must be a real scalar; it is {value!r}")
        elif value.shape != () or not jax.numpy.issubdtype(
            value.dtype, jax.numpy.floating
        ):
            self.problem(
                path,
                f"the loss must be a real scalar; it is "
                f"{value.dtype} of shape {value.shape}",
            )

    def fits(self, config):
        """Every number of the objective, start and optimizer fits the dtype."""
        dtype = np.dtype(config["dtype"] or "float32")
        limit = float(np.finfo(dtype).max)

        def walk(value, path):
            if isinstance(value, dict):
                for key, item in value.items():
                    walk(item, path + (key,))
            elif isinstance(value, list):
                for index, item in enumerate(value):
                    walk(item, path + (index,))
            elif isinstance(value, float) and abs(value) > limit:
                self.problem(
                    path,
                    f"the value {value:g} does not fit in "
                    f"{dtype.name}; use a smaller value or dtype: float64",
                )

        for section in ("objective", "start", "optimizer"):
            walk(config[section], (section,))
        expr = config["objective"].get("expr")
        if isinstance(expr, str):
            large = [c for c in formula.constants(expr) if not abs(c) <= limit]
            if large:
                self.problem(
                    ("objective", "expr"),
                    f"the constant {large[0]:g} does not fit in {dtype.name}; "
                    "use smaller constants or dtype: float64",
                )

    def groups(self, config):
        """A list of learning rates must give one per parameter group."""
        rates = config["optimizer"].get("learning_rate")
        if not isinstance(rates, list):
            return
        names = group_names(config)
        if len(rates) != len(names):
            groups = f"{len(names)} parameter group{'s' * (len(names) != 1)}"
            self.problem(
                ("optimizer", "learning_rate"),
                f"{len(rates)} learning rates for {groups} ({', '.join(names)}); "
                "give one per group, in that order",
            )
            # Said once: a sweep of the learning rate is not refused again
            # for the list this problem already names.
            self.fixed.pop("optimizer.learning_rate", None)
            self.targets["optimizer.learning_rate"] = None

    # The sweep.

    def axis(self, config, key, spec):
        path = ("sweep", key)
        check = self.target(key, path)
        if check is None:  # said already: the values of a wrong key are noise
            return str(key), None, "list"
        values, scale = self.axis_values(spec, path)
        if values is None:
            return str(key), None, scale
        if check is not None:
            # Every check of a swept value allows an interval, so the ends of
            # a generated axis (ordered, perhaps 10^8 values) stand for it.
            ends = values if scale == "list" else values[[0, -1]]
            for value in ends:
                message = check(float(value))
                if message:
                    self.problem(path, f"the value {value:g} {message}")
                    break
        dtype = np.dtype(config["dtype"] or "float32")
        with np.errstate(over="ignore"):
            cast = values.astype(dtype)
        if not np.all(np.isfinite(cast)):
            worst = values[~np.isfinite(cast)][0]
            self.problem(
                path,
                f"the value {worst:g} does not fit in {dtype.name}; use "
                "smaller values or dtype: float64",
            )
        return str(key), values, scale

    def target(self, key, path):
        """The check of the value a sweep key replaces, or None after a problem."""
        if not isinstance(key, str):
            self.problem(path, "a sweep key is the dotted path of a config value")
            return None
        if key in self.targets:
            return self.targets[key] or _no_check
        if key in _UNSWEEPABLE:
            self.problem(path, f"'{key}' {_UNSWEEPABLE[key]} and cannot be swept")
            return None
        if key in self.fixed:
            self.problem(path, self.fixed[key])
            return None
        known = sorted(self.targets)
        # `sweep.optimizer.lr.num=64` meant the num of an axis: match the key
        # without its last part, and with the usual short names spelled out.
        stem, _, last = key.rpartition(".")
        field = last if last in ("num", "linspace", "logspace") and stem else ""
        guess = stem if field else key
        guess = ".".join(_SPELLED.get(part, part) for part in guess.split("."))
        close = difflib.get_close_matches(guess, known, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        if close and field:
            hint += f" (as in sweep.{close[0]}.{field}=...)"
        self.problem(
            path,
            f"'{key}' is not a numeric config value that can be swept "
            f"(these can: {', '.join(known) or 'none'}){hint}",
        )
        return None

    def axis_values(self, spec, path):
        if isinstance(spec, list):
            if not spec:
                self.problem(path, "the list of values is empty")
                return None, "list"
            values = [
                self.number({i: item}, path + (i,), None, True)
                for i, item in enumerate(spec)
            ]
            if any(value is None for value in values):
                return None, "list"
            repeated = [v for i, v in enumerate(values) if v in values[:i]]
            if repeated:
                self.problem(
                    path,
                    f"the value {repeated[0]:g} is given twice; a sweep axis "
                    "takes each value once",
                )
                return None, "list"
            return np.asarray(values, dtype=np.float64), "list"
        if not isinstance(spec, dict):
            self.problem(
                path,
                "a sweep is a list of values or a mapping such as "
                "{linspace: [0.01, 1.2], num: 240}",
            )
            return None, "list"
        self.keys(spec, path, ("linspace", "logspace", "num"))
        kinds = [kind for kind in ("linspace", "logspace") if kind in spec]
        if len(kinds) != 1:
            self.problem(
                path,
                "give exactly one of linspace: [a, b] or "
                "logspace: [a, b] (base-10 exponents), with num",
            )
            return None, "list"
        kind = kinds[0]
        num = self.integer(spec, path + ("num",), None, 1, MAX_AXIS, required=True)
        bounds = spec[kind]
        if not isinstance(bounds, list) or len(bounds) != 2:
            self.problem(path + (kind,), f"{kind} takes two numbers [a, b]")
            return None, "list"
        low = self.number({0: bounds[0]}, path + (kind, 0), None, True)
        high = self.number({1: bounds[1]}, path + (kind, 1), None, True)
        if num is None or low is None or high is None:
            return None, "list"
        if low == high and num > 1:
            self.problem(
                path + (kind,),
                f"[{low:g}, {high:g}] with num: {num} is the same value {num} "
                "times; give two different bounds, or num: 1",
            )
            return None, "list"
        if kind == "logspace" and low > high:
            self.problem(
                path + (kind,),
                f"[{low:g}, {high:g}] has its bounds swapped; write the smaller "
                f"exponent first: [{high:g}, {low:g}]",
            )
            return None, "list"
        if kind == "linspace":
            return np.linspace(low, high, num), "linear"
        if max(low, high) > 300:
            self.problem(
                path + (kind,),
                f"10^{max(low, high):g} overflows; logspace "
                "takes base-10 exponents, such as [-3, 0]",
            )
            return None, "list"
        return np.logspace(low, high, num), "log"

    # Values.

    def keys(self, mapping, path, allowed):
        if not isinstance(mapping, dict):
            return
        for key in mapping:
            if key not in allowed:
                names = [str(a) for a in allowed]
                close = difflib.get_close_matches(str(key), names, n=1)
                if close and close[0] not in mapping:
                    self.meant.add(path + (close[0],))
                hint = (
                    f"did you mean '{close[0]}'?"
                    if close
                    else f"known keys: {', '.join(names)}"
                )
                self.problem(path + (key,), f"unknown key '{key}'; {hint}")

    def section(self, data, path, required):
        value = data.get(path[-1]) if isinstance(data, dict) else None
        if value is None:
            if required and isinstance(data, dict) and path[-1] not in data:
                self.missing(path, f"missing section '{path[-1]}'")
            elif required:
                self.problem(path, f"the section '{path[-1]}' is empty")
            return {}
        if not isinstance(value, dict):
            self.problem(path, f"must be a mapping of keys, not {_kind(value)}")
            return {}
        return value

    def present(self, mapping, path, default, required):
        key = path[-1]
        if not isinstance(mapping, dict) or key not in mapping or mapping[key] is None:
            if required:
                empty = isinstance(mapping, dict) and key in mapping
                if empty:
                    self.problem(path, "is empty; give a value")
                else:
                    self.missing(path, "missing; this value is required")
            return False, default
        return True, mapping[key]

    def setting(self, mapping, path, setting):
        required = setting.default is None
        if setting.kind in ("number", "real"):
            return self.number(mapping, path, setting.default, required, setting.check)
        if setting.kind == "integer":
            value = self.integer(
                mapping, path, setting.default, None, 2**31 - 1, required=required
            )
        elif setting.kind == "choice":
            value = self.choice(mapping, path, setting.choices, setting.default)
        else:  # "numbers"
            present, value = self.present(mapping, path, setting.default, required)
            if present:
                if not isinstance(value, list) or not value:
                    self.problem(path, "expected a list of numbers, such as [1, 10]")
                    return setting.default
                value = [
                    self.number({i: v}, path + (i,), None, True)
                    for i, v in enumerate(value)
                ]
        if value is not None and setting.check and setting.kind != "choice":
            message = setting.check(value)
            if message:
                self.problem(path, f"the value {value} {message}")
        return value

    def number(self, mapping, path, default, required=False, check=None):
        present, value = self.present(mapping, path, default, required)
        if not present:
            return value
        if _not_number(value):
            self.problem(path, f"expected a number, got {self.shown(path, value)}")
            return default
        try:
            value = float(value)
        except OverflowError:
            self.problem(path, f"the number {value} is too large")
            return default
        if not math.isfinite(value):
            self.problem(path, f"expected a finite number, got {value}")
            return default
        message = check(value) if check else None
        if message:
            self.problem(path, f"the value {value:g} {message}")
        return value

    def integer(
        self, mapping, path, default, minimum=None, maximum=None, required=False, why=""
    ):
        present, value = self.present(mapping, path, default, required)
        if not present:
            return value
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            self.problem(
                path, f"expected a whole number, got {self.shown(path, value)}"
            )
            return default
        reason = f" ({why})" if why else ""
        if minimum is not None and value < minimum:
            self.problem(path, f"must be at least {minimum}, got {value}{reason}")
            return default
        if maximum is not None and value > maximum:
            self.problem(path, f"must be at most {maximum:,}, got {value:,}")
            return default
        return value

    def boolean(self, mapping, path, default):
        present, value = self.present(mapping, path, default, False)
        if present and not isinstance(value, bool):
            self.problem(path, f"expected true or false, got {self.shown(path, value)}")
            return default
        return value

    def text(self, mapping, path, default, required=False):
        present, value = self.present(mapping, path, default, required)
        if present and not isinstance(value, str):
            self.problem(path, f"expected text, got {self.shown(path, value)}")
            return default
        if present and not value.strip():
            self.problem(path, "is empty; give a value")
            return default
        return value

    def choice(self, mapping, path, options, default):
        present, value = self.present(mapping, path, default, False)
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, str):
            self.problem(
                path,
                f"expected one of {', '.join(options)}, got {self.shown(path, value)}",
            )
            return default
        if value not in options:
            close = difflib.get_close_matches(str(value), list(options), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.problem(path, f"'{value}' is not one of: {', '.join(options)}{hint}")
            return default
        return value

    def shown(self, path, value):
        text = self.origins.texts.get(tuple(path))
        if (
            isinstance(value, bool)
            and text is not None
            and text.lower() not in ("true", "false")
        ):
            return f"'{text}', which YAML reads as the boolean {str(value).lower()}"
        if isinstance(value, str):
            return f"the text '{value}'" + _as_number_hint(value)
        return f"{_kind(value)} {value!r}"


def _as_number_hint(text):
    """Why a text that looks like a number was not read as one."""
    for wrong, right, why in (
        ("\u2212", "-", "'\u2212' is a typographic minus; type '-'"),
        ("\u2013", "-", "'\u2013' is a dash; type '-' for minus"),
        (",", ".", "write the decimal point as '.'"),
    ):
        if wrong in text and _is_number(text.replace(wrong, right)):
            return f" ({why})"
    if _is_number(text):
        return " (in quotes, so it is text; remove the quotes)"
    return ""


def _is_number(text):
    try:
        float(text)
    except ValueError:
        return False
    return any(c.isdigit() for c in text)  # not 'nan' or 'inf': YAML's are .nan, .inf


#: Short names researchers write for hyperparameters, spelled out for hints.
_SPELLED = {"lr": "learning_rate", "mom": "momentum", "beta": "momentum"}


def substitute(config, values):
    """A copy of ``config`` with the value at each dotted path replaced."""
    config = copy.deepcopy(config) if values else config
    for key, value in values.items():
        *parents, last = key.split(".")
        target = config
        for part in parents:
            target = target[int(part) if isinstance(target, list) else part]
        target[int(last) if isinstance(target, list) else last] = value
    return config


def group_names(config) -> tuple[str, ...]:
    """The parameter groups of a checked config's objective, in order."""
    if config["objective"].get("expr") is not None:
        return tuple(config["start"])
    if config["objective"].get("callable") is not None:
        return tuple(config["start"])
    problem = jax.eval_shape(
        lambda: objectives.build(config, config["dtype"] or "float32").params
    )
    return tuple(problem)


def _no_check(value):
    return None


def _not_number(value):
    return isinstance(value, bool) or not isinstance(value, int | float)


def _kind(value):
    return {
        dict: "a mapping",
        list: "a list",
        str: "text",
        bool: "a boolean",
        type(None): "nothing",
    }.get(type(value), type(value).__name__)


def _open_unit(value):
    if not 0 < value < 1:
        return "is not a valid relative tolerance; use a number between 0 and 1"
    return None


def _first_line(err):
    text = str(err).strip().splitlines()
    return text[0][:200] if text else ""
