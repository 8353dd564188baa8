"""The search space of an experiment, and its conversion to the contract.

Written as tauro writes skopt's (``Real``, ``Integer``, ``Categorical``),
without importing skopt; skopt's own objects are accepted too, as are
``(low, high)`` tuples and category lists.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf import struct_pb2

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb

_PRIORS = {"uniform": pb.PRIOR_UNIFORM, "log-uniform": pb.PRIOR_LOG_UNIFORM}


@dataclass(frozen=True)
class Real:
    """A float from ``low`` to ``high``; skopt's ``Real`` signature."""

    low: float
    high: float
    prior: str = "uniform"
    base: int = 10
    transform: str | None = None
    name: str | None = None
    dtype: Any = float


@dataclass(frozen=True)
class Integer:
    """A whole number from ``low`` to ``high``, both included; skopt's ``Integer`` signature."""

    low: int
    high: int
    prior: str = "uniform"
    base: int = 10
    transform: str | None = None
    name: str | None = None
    dtype: Any = int


@dataclass(frozen=True)
class Categorical:
    """One of ``categories``; skopt's ``Categorical`` signature (``prior`` is not used)."""

    categories: Sequence[Any]
    prior: Sequence[float] | None = None
    transform: str | None = None
    name: str | None = None


Dimension = Real | Integer | Categorical


def dimension_proto(d: Any, name: str | None = None) -> pb.SearchDimension:
    """One dimension as the contract's message.

    ``d`` is a ``Real``, ``Integer`` or ``Categorical`` (these or skopt's), a
    ``(low, high)`` or ``(low, high, prior)`` tuple (two ints make an Integer),
    or a list of categories; ``name`` names it when ``d`` does not.
    """
    kind = type(d).__name__
    dim_name = getattr(d, "name", None) or name
    if not dim_name:
        raise ValueError(f"dimension {d!r} has no name: give it name=... or pass the space as a mapping of names")
    if kind in ("Real", "Integer"):
        prior = getattr(d, "prior", "uniform") or "uniform"
        if prior not in _PRIORS:
            raise ValueError(f"dimension {dim_name!r}: prior must be 'uniform' or 'log-uniform', got {prior!r}")
        return pb.SearchDimension(
            name=dim_name,
            kind=pb.DIMENSION_KIND_REAL if kind == "Real" else pb.DIMENSION_KIND_INTEGER,
            low=float(d.low),
            high=float(d.high),
            prior=_PRIORS[prior],
        )
    if kind == "Categorical":
        values = [struct_pb2.Value() for _ in d.categories]
        for v, c in zip(values, d.categories):
            _set_value(v, c)
        return pb.SearchDimension(name=dim_name, kind=pb.DIMENSION_KIND_CATEGORICAL, categories=values)
    if isinstance(d, tuple) and len(d) in (2, 3) and all(isinstance(x, (int, float)) for x in d[:2]):
        prior = d[2] if len(d) == 3 else "uniform"
        both_int = all(isinstance(x, int) and not isinstance(x, bool) for x in d[:2])
        cls = Integer if both_int else Real
        return dimension_proto(cls(d[0], d[1], prior=prior, name=dim_name))
    if isinstance(d, (list, tuple)):
        return dimension_proto(Categorical(list(d), name=dim_name))
    raise TypeError(f"dimension {dim_name!r}: use Real(...), Integer(...), Categorical([...]), (low, high) or a list, not {kind}")


def _set_value(v: struct_pb2.Value, c: Any) -> None:
    if isinstance(c, bool):
        v.bool_value = c
    elif isinstance(c, (int, float)):
        v.number_value = float(c)
    elif isinstance(c, str):
        v.string_value = c
    elif c is None:
        v.null_value = struct_pb2.NULL_VALUE
    else:
        raise TypeError(f"a category must be a string, number, boolean or None, not {type(c).__name__}")


def space_protos(space: Sequence[Any] | Mapping[str, Any] | None) -> list[pb.SearchDimension]:
    if space is None:
        return []
    if isinstance(space, Mapping):
        return [dimension_proto(d, name) for name, d in space.items()]
    return [dimension_proto(d) for d in space]


def whole_number_names(space: Iterable[pb.SearchDimension]) -> frozenset[str]:
    """The dimensions whose values are whole numbers: Integer ones, and
    Categorical ones whose choices all are (a node reads them as ints)."""
    return frozenset(d.name for d in space if _whole(d))


def _whole(d: pb.SearchDimension) -> bool:
    if d.kind == pb.DIMENSION_KIND_INTEGER:
        return True
    return (
        d.kind == pb.DIMENSION_KIND_CATEGORICAL
        and len(d.categories) > 0
        and all(c.WhichOneof("kind") == "number_value" and c.number_value.is_integer() for c in d.categories)
    )
