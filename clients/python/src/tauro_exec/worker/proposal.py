"""WorkerService.Suggest: the worker protocol's trials turned into the optimiser's."""

from __future__ import annotations

import json
from typing import Any

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as xpb
from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb
from tauro_exec.worker.optimizer import Dimension, Direction, Kind, Observation, SamplerName, TrialState, suggest

_KINDS: dict[int, Kind] = {
    xpb.DIMENSION_KIND_REAL: "real",
    xpb.DIMENSION_KIND_INTEGER: "integer",
    xpb.DIMENSION_KIND_CATEGORICAL: "categorical",
}
_STATES: dict[int, TrialState] = {
    xpb.TRIAL_STATE_SUCCEEDED: "complete",
    xpb.TRIAL_STATE_FAILED: "failed",
    xpb.TRIAL_STATE_RUNNING: "running",
}


def _category(v: Any) -> Any:
    kind = v.WhichOneof("kind")
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() else n
    if kind == "string_value":
        return v.string_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "null_value":
        return None
    raise ValueError("a category must be a string, number, boolean or null")


def dimension(d: xpb.SearchDimension) -> Dimension:
    kind = _KINDS.get(d.kind)
    if kind is None:
        raise ValueError(f"dimension {d.name!r} has no kind")
    return Dimension(
        name=d.name,
        kind=kind,
        low=d.low,
        high=d.high,
        log=d.prior == xpb.PRIOR_LOG_UNIFORM,
        categories=tuple(_category(c) for c in d.categories),
    )


def suggest_for(request: pb.SuggestRequest) -> pb.SuggestResponse:
    space = [dimension(d) for d in request.space]
    trials = []
    for t in request.trials:
        state = _STATES.get(t.state)
        if state is None:  # cancelled trials tell nothing
            continue
        params = json.loads(t.params_json or "{}")
        trials.append(Observation(params=params, state=state, value=t.value if state == "complete" else None))
    direction: Direction = "maximize" if request.direction == xpb.DIRECTION_MAXIMIZE else "minimize"
    sampler: SamplerName = "random" if request.sampler == xpb.SAMPLER_RANDOM else "tpe"
    params = suggest(
        space,
        trials=trials,
        number=request.number,
        seed=request.seed,
        n_trials=request.n_trials,
        direction=direction,
        sampler=sampler,
    )
    return pb.SuggestResponse(params_json=json.dumps(params))
