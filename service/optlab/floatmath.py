"""Float64 arithmetic on Python floats with torch's IEEE semantics: inf and nan instead of exceptions.

The `math` module raises on overflow and outside a function's domain (log(-1), 1/0, exp(1000)); torch
returns inf or nan. The compiled fast path evaluates with these helpers so both backends agree.
"""

import math
from collections.abc import Callable

PI = math.pi
E = math.e
INF = math.inf
NAN = math.nan
isfinite = math.isfinite


def div(a: float, b: float) -> float:
    """a / b with inf/nan for a zero divisor."""
    try:
        return a / b
    except ZeroDivisionError:
        if a == 0.0 or math.isnan(a):
            return NAN
        return math.copysign(INF, a) * math.copysign(1.0, b)


def power(a: float, b: float) -> float:
    """a ** b as torch.pow computes it for float64."""
    try:
        return math.pow(a, b)
    except OverflowError:
        odd = float(b).is_integer() and int(b) % 2 == 1
        return -INF if a < 0 and odd else INF
    except ValueError:  # 0 ** negative, or a negative base with a fractional exponent
        if a == 0.0:
            odd = float(b).is_integer() and int(b) % 2 == 1
            return math.copysign(INF, a) if odd else INF
        return NAN


def exp(a: float) -> float:
    """e ** a, inf on overflow."""
    try:
        return math.exp(a)
    except OverflowError:
        return INF


def log(a: float) -> float:
    """Natural log: -inf at 0, nan below."""
    if a > 0.0 or math.isnan(a):
        return math.log(a)
    return -INF if a == 0.0 else NAN


def sqrt(a: float) -> float:
    """Square root, nan below 0."""
    return math.sqrt(a) if a >= 0.0 or math.isnan(a) else NAN


def _trig(fn: Callable[[float], float]) -> Callable[[float], float]:
    def safe(a: float) -> float:
        return fn(a) if math.isfinite(a) else NAN

    return safe


def cosh(a: float) -> float:
    """Hyperbolic cosine, inf on overflow."""
    try:
        return math.cosh(a)
    except OverflowError:
        return INF


def sinh(a: float) -> float:
    """Hyperbolic sine, signed inf on overflow."""
    try:
        return math.sinh(a)
    except OverflowError:
        return math.copysign(INF, a)


def sign(a: float) -> float:
    """-1, 0 or 1 (nan stays nan): the derivative of abs as autograd defines it."""
    if math.isnan(a):
        return NAN
    return float((a > 0) - (a < 0))


UNARY: dict[str, Callable[[float], float]] = {
    "sin": _trig(math.sin),
    "cos": _trig(math.cos),
    "tan": _trig(math.tan),
    "exp": exp,
    "log": log,
    "sqrt": sqrt,
    "abs": abs,
    "cosh": cosh,
    "sinh": sinh,
    "tanh": math.tanh,
    "sign": sign,
}


def unary(func: str, a: float) -> float:
    """Apply the named one-argument function."""
    return UNARY[func](a)


def binary(op: str, a: float, b: float) -> float:
    """Apply a binary operator."""
    if op == "+":
        return a + b
    if op == "-":
        return a - b
    if op == "*":
        return a * b
    if op == "/":
        return div(a, b)
    return power(a, b)
