"""Named test functions: ``objective: {name: ...}`` with the family's settings.

Each family here registers itself in :data:`dynamics.objectives.FAMILIES`. The
one-dimensional ones have a single scalar parameter (``w`` or ``x``), the
classic two-dimensional test functions have ``x`` and ``y``, and
``quadratic_nd`` has one vector ``w``.

A build runs inside the traced simulation: every ``number`` setting and start
value may be a traced scalar, so it goes through ``jnp.asarray`` and never
through ``float()`` or an ``if``. Only ``integer``, ``choice`` and ``numbers``
settings (the spectrum and seed of ``quadratic_nd``) are plain Python values
that may shape the program.
"""

import functools
import math

import jax.numpy as jnp
import numpy as np

from dynamics.objectives import FAMILIES, Family, Problem, Setting, at_least, positive


def _number(default, help, check=None):
    return Setting(default=default, kind="number", check=check, help=help)


def _arrays(values, names, dtype):
    """``values[name]`` as a scalar array of ``dtype`` for each name, in order.

    The order is the family's, not the config's, so that per-group learning
    rates always meet the groups in the same order.
    """
    return {name: jnp.asarray(values[name], dtype) for name in names}


def _family(summary, settings, start, loss_of):
    """A family of scalar parameters, one per key of ``start``.

    ``loss_of(**settings)`` returns the loss, a function of the parameters; the
    settings reach it as arrays of the run's dtype, possibly traced.
    """

    def build(setting_values, start_values, dtype):
        constants = _arrays(setting_values, settings, dtype)
        params = _arrays(start_values, start, dtype)
        return Problem(params=params, loss=loss_of(**constants))

    return Family(summary=summary, settings=settings, start=start, build=build)


# One dimension.


def _seed_loss():
    def loss(params):
        return (params["w"] - 2) ** 2 + 1

    return loss


def _quadratic_loss(curvature, center, offset):
    def loss(params):
        return 0.5 * curvature * (params["w"] - center) ** 2 + offset

    return loss


def _quartic_loss(scale, center):
    def loss(params):
        return scale * (params["w"] - center) ** 4 / 4

    return loss


def _double_well_loss(height, width):
    def loss(params):
        return height * (params["w"] ** 2 - width**2) ** 2

    return loss


def _cubic_loss(h):
    def loss(params):
        x = params["x"]
        return x**3 / 3 - h * x**2 / 2

    return loss


def _rough_additive_loss(eps, wavelength):
    def loss(params):
        x = params["x"]
        return x**2 + eps * jnp.cos(2 * jnp.pi * x / wavelength)

    return loss


def _rough_multiplicative_loss(eps, wavelength):
    def loss(params):
        x = params["x"]
        return x**2 * (1 + eps * jnp.cos(2 * jnp.pi * x / wavelength))

    return loss


def _rough_settings():
    return {
        "eps": _number(0.01, "amplitude of the ripples"),
        "wavelength": _number(
            0.1, "period of the ripples in x", positive("a ripple's wavelength")
        ),
    }


FAMILIES["seed"] = _family(
    "J(w) = (w − 2)² + 1: the starting quadratic, minimum 1 at w = 2; plain "
    "gradient descent converges for 0 < lr < 1.",
    settings={},
    start={"w": _number(0.0, "starting w")},
    loss_of=_seed_loss,
)
FAMILIES["quadratic"] = _family(
    "J(w) = ½·curvature·(w − center)² + offset: plain gradient descent "
    "contracts by |1 − lr·curvature| a step, so it converges for "
    "0 < lr·curvature < 2 and oscillates without end at lr·curvature = 2.",
    settings={
        "curvature": _number(
            1.0, "second derivative J''; negative gives a concave parabola"
        ),
        "center": _number(0.0, "the w of the minimum (of the maximum if concave)"),
        "offset": _number(0.0, "the value J(center)"),
    },
    start={"w": _number(1.0, "starting w")},
    loss_of=_quadratic_loss,
)
FAMILIES["quartic"] = _family(
    "J(w) = scale·(w − center)⁴ / 4: minimum 0 at w = center, where the "
    "curvature 3·scale·(w − center)² vanishes, so any learning rate is stable "
    "close enough to it.",
    settings={
        "scale": _number(1.0, "the factor in front", positive("the quartic's scale")),
        "center": _number(0.0, "the w of the minimum"),
    },
    start={"w": _number(1.0, "starting w")},
    loss_of=_quartic_loss,
)
FAMILIES["double_well"] = _family(
    "J(w) = height·(w² − width²)²: minima 0 at w = ±width, with curvature "
    "8·height·width² there, and a barrier height·width⁴ at w = 0.",
    settings={
        "height": _number(1.0, "the factor in front", positive("a well's height")),
        "width": _number(1.0, "the minima sit at ±width", positive("a well's width")),
    },
    start={"w": _number(0.5, "starting w")},
    loss_of=_double_well_loss,
)
FAMILIES["cubic"] = _family(
    "J(x) = x³/3 − h·x²/2: for h > 0 a local minimum −h³/6 at x = h and a local "
    "maximum 0 at x = 0; unbounded below as x → −∞, so a large step escapes.",
    settings={"h": _number(1.0, "the x of the local minimum when positive")},
    start={"x": _number(0.5, "starting x")},
    loss_of=_cubic_loss,
)
FAMILIES["rough_additive"] = _family(
    "J(x) = x² + eps·cos(2πx/wavelength): a quadratic with added ripples (the "
    "rough quadratic of Liu et al.); x = 0 is stationary, and a minimum only "
    "while eps·(2π/wavelength)² < 2.",
    settings=_rough_settings(),
    start={"x": _number(1.0, "starting x")},
    loss_of=_rough_additive_loss,
)
FAMILIES["rough_multiplicative"] = _family(
    "J(x) = x²·(1 + eps·cos(2πx/wavelength)): ripples that grow with the "
    "quadratic; minimum 0 at x = 0 for |eps| < 1.",
    settings=_rough_settings(),
    start={"x": _number(1.0, "starting x")},
    loss_of=_rough_multiplicative_loss,
)


# Two dimensions.


def _rosenbrock_loss(a, b):
    def loss(params):
        x, y = params["x"], params["y"]
        return (a - x) ** 2 + b * (y - x**2) ** 2

    return loss


def _himmelblau_loss():
    def loss(params):
        x, y = params["x"], params["y"]
        return (x**2 + y - 11) ** 2 + (x + y**2 - 7) ** 2

    return loss


def _beale_loss():
    def loss(params):
        x, y = params["x"], params["y"]
        return (
            (1.5 - x + x * y) ** 2
            + (2.25 - x + x * y**2) ** 2
            + (2.625 - x + x * y**3) ** 2
        )

    return loss


def _rastrigin_loss(A):
    def loss(params):
        x, y = params["x"], params["y"]
        ripples = A * (jnp.cos(2 * jnp.pi * x) + jnp.cos(2 * jnp.pi * y))
        return 2 * A + x**2 + y**2 - ripples

    return loss


def _saddle_loss():
    def loss(params):
        return params["x"] ** 2 - params["y"] ** 2

    return loss


def _plane_start(x, y):
    return {"x": _number(x, "starting x"), "y": _number(y, "starting y")}


FAMILIES["rosenbrock"] = _family(
    "J(x, y) = (a − x)² + b·(y − x²)²: a narrow curved valley with its minimum "
    "0 at (a, a²).",
    settings={
        "a": _number(1.0, "the x of the minimum"),
        "b": _number(100.0, "steepness of the valley walls"),
    },
    start=_plane_start(-1.2, 1.0),
    loss_of=_rosenbrock_loss,
)
FAMILIES["himmelblau"] = _family(
    "J(x, y) = (x² + y − 11)² + (x + y² − 7)²: four minima of value 0, at "
    "(3, 2), (−2.805118, 3.131312), (−3.779310, −3.283186) and "
    "(3.584428, −1.848126).",
    settings={},
    start=_plane_start(0.0, 0.0),
    loss_of=_himmelblau_loss,
)
FAMILIES["beale"] = _family(
    "J(x, y) = (1.5 − x + xy)² + (2.25 − x + xy²)² + (2.625 − x + xy³)²: flat "
    "plateaus and steep ridges, minimum 0 at (3, 0.5).",
    settings={},
    start=_plane_start(1.0, 1.0),
    loss_of=_beale_loss,
)
FAMILIES["rastrigin"] = _family(
    "J(x, y) = 2A + Σ over v in (x, y) of (v² − A·cos 2πv): a grid of local "
    "minima near the integers, the global minimum 0 at the origin.",
    settings={"A": _number(10.0, "depth of the ripples")},
    start=_plane_start(2.5, 2.5),
    loss_of=_rastrigin_loss,
)
FAMILIES["saddle"] = _family(
    "J(x, y) = x² − y²: a saddle at the origin, unbounded below along y; the "
    "start y = 0.01 sits just off the ridge so the escape shows.",
    settings={},
    start=_plane_start(1.0, 0.01),
    loss_of=_saddle_loss,
)


# Many dimensions.


def quadratic_nd_basis(n: int, seed: int) -> np.ndarray:
    """A random orthogonal ``n × n`` matrix, the same for the same seed.

    The QR factors of a Gaussian matrix from ``np.random.default_rng(seed)``,
    with each column of Q multiplied by the sign of R's diagonal entry: that
    makes the factorisation unique, so the result depends on the seed alone
    (and is distributed uniformly over the orthogonal group). Its determinant
    may be −1.
    """
    return _basis(n, seed).copy()


# A QR factorisation of 5000 × 5000 takes seconds, and checking a config,
# compiling its sweep and drawing its figures each build the objective: the
# last few bases and Hessians are kept, read-only, and shared.
@functools.lru_cache(maxsize=2)
def _basis(n, seed):
    gaussian = np.random.default_rng(seed).standard_normal((n, n))
    q, r = np.linalg.qr(gaussian)
    q *= np.where(np.diag(r) < 0, -1.0, 1.0)
    q.setflags(write=False)
    return q


def quadratic_nd_matrix(spectrum, seed: int = 0) -> np.ndarray:
    """The Hessian A = Q·diag(spectrum)·Qᵀ of ``quadratic_nd``, in float64.

    Q is :func:`quadratic_nd_basis` of ``len(spectrum)`` and ``seed``.

    >>> a = quadratic_nd_matrix([1.0, 4.0], seed=0)
    >>> np.linalg.eigvalsh(a).round(12).tolist()
    [1.0, 4.0]
    """
    return _matrix(tuple(float(v) for v in spectrum), seed).copy()


@functools.lru_cache(maxsize=2)
def _matrix(spectrum, seed):
    eigenvalues = np.asarray(spectrum, dtype=np.float64)
    q = _basis(eigenvalues.size, seed)
    a = (q * eigenvalues) @ q.T
    a = (a + a.T) / 2
    a.setflags(write=False)
    return a


def _check_spectrum(values):
    if len(values) == 0:
        return "must list at least one eigenvalue, as in [1.0, 10.0]"
    # Entries that are not numbers at all are the schema's to report, not ours.
    numbers = [value for value in values if isinstance(value, int | float)]
    if not all(math.isfinite(value) for value in numbers):
        return "must hold finite numbers only"
    return None


def _build_quadratic_nd(settings, start, dtype):
    spectrum, seed = settings["spectrum"], settings["seed"]
    n = len(spectrum)
    hessian = jnp.asarray(_matrix(tuple(float(v) for v in spectrum), seed), dtype)
    direction = _basis(n, seed) @ np.full(n, 1 / math.sqrt(n))
    w0 = jnp.asarray(start["w"], dtype) * jnp.asarray(direction, dtype)

    def loss(params):
        w = params["w"]
        return 0.5 * w @ (hessian @ w)

    return Problem(params={"w": w0}, loss=loss)


FAMILIES["quadratic_nd"] = Family(
    summary="J(w) = ½·wᵀAw, A = Q·diag(spectrum)·Qᵀ with Q a random orthogonal "
    "matrix drawn from seed; it starts at w·Q·(1, …, 1)/√n, so every eigenvector "
    "gets the same share. Gradient descent converges for 0 < lr·λ < 2 for every "
    "eigenvalue λ.",
    settings={
        "spectrum": Setting(
            kind="numbers",
            check=_check_spectrum,
            help="the eigenvalues of A, one per dimension",
        ),
        "seed": Setting(
            default=0,
            kind="integer",
            check=at_least(0, "a seed for numpy's default_rng"),
            help="seed of the random rotation Q",
        ),
    },
    start={"w": _number(1.0, "distance of the start from the minimum at 0")},
    build=_build_quadratic_nd,
    # The Gaussian, its QR factors and the Hessian, n × n each in float64,
    # then the Hessian in the run's dtype.
    footprint=lambda settings, itemsize: (
        len(settings["spectrum"]) ** 2 * (4 * 8 + itemsize),
        f"quadratic_nd with {len(settings['spectrum']):,} eigenvalues holds "
        f"{len(settings['spectrum']):,}² matrices",
        "give objective.spectrum fewer eigenvalues",
    ),
)
