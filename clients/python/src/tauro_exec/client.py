"""Client: validate, start and find runs on an execd daemon, in one of its projects."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from google.protobuf import struct_pb2

from tauro_exec._proto.tauro.exec.v1 import exec_pb2 as pb
from tauro_exec._rpc import TOKEN_ENV, Security, Transport
from tauro_exec.experiment import Experiment
from tauro_exec.listing import Experiments, Projects, Runs
from tauro_exec.models import Caller, Pipeline, PipelineSummary, Plan, Project, RunState
from tauro_exec.run import Run
from tauro_exec.space import space_protos

PROJECT_ENV = "TAURO_EXEC_PROJECT"

DateLike = str | date
# PEM data, or the path of a file that holds it.
PEM = bytes | str | os.PathLike[str]


class Client:
    """A connection to execd.

    ``timeout`` bounds each unary call, in seconds (None: no bound). Use it as a
    context manager, or call ``close()``, to release the channel.

        with Client("127.0.0.1:50051") as client:
            run = client.execute("daily_sales", start_date="2025-01-01").wait()

    A daemon that requires a token gets ``token`` (default: $TAURO_EXEC_TOKEN).
    A token goes over TLS unless the daemon is on this machine. TLS is on with
    ``tls=True``, with ``root_certificates`` (the CA to trust, PEM bytes or a
    file path), or with ``certificate_chain`` and ``private_key`` (this
    client's certificate and key for mutual TLS, PEM bytes or file paths).

    An execd that serves several projects needs each call about pipelines to
    name one: ``project`` (default: $TAURO_EXEC_PROJECT) is the project the
    calls name when they pass no ``project=`` of their own, and the one runs
    and experiments are listed from. Without one, calls mean execd's only
    project and listings cover every project the caller may view. A run or
    an experiment read by id is found whatever its project.
    """

    def __init__(
        self,
        target: str = "127.0.0.1:50051",
        *,
        timeout: float | None = None,
        token: str | None = None,
        tls: bool = False,
        root_certificates: PEM | None = None,
        certificate_chain: PEM | None = None,
        private_key: PEM | None = None,
        project: str | None = None,
    ) -> None:
        if (certificate_chain is None) != (private_key is None):
            raise ValueError("certificate_chain and private_key go together")
        security = Security(
            token=token if token is not None else os.environ.get(TOKEN_ENV) or None,
            tls=tls,
            root_certificates=_pem(root_certificates),
            certificate_chain=_pem(certificate_chain),
            private_key=_pem(private_key),
        )
        self._rpc = Transport(target, timeout, security)
        self._project = project if project is not None else os.environ.get(PROJECT_ENV) or None

    @property
    def target(self) -> str:
        return self._rpc.target

    @property
    def project(self) -> str | None:
        """The project calls name when they pass none; None means execd's only project."""
        return self._project

    def _in(self, project: str | None) -> str:
        """The project a call names: its own ``project=``, else the client's ("" for none)."""
        return (self._project if project is None else project) or ""

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self._rpc.close()

    def __repr__(self) -> str:
        if self._project:
            return f"Client({self.target!r}, project={self._project!r})"
        return f"Client({self.target!r})"

    # ---- projects ----------------------------------------------------------

    def projects(self) -> Projects:
        """The projects execd serves that the caller may view, by name.

        Each has its folder, default environment, state (a ``BROKEN`` one
        says why in ``error``), worker pool and the caller's role in it.
        """
        resp = self._rpc.call(self._rpc.stub.ListProjects, pb.ListProjectsRequest())
        return Projects(Project.from_proto(p) for p in resp.projects)

    def caller(self) -> Caller:
        """Who execd takes this client's credentials for, and their role in each project."""
        return Caller.from_proto(self._rpc.call(self._rpc.stub.GetCaller, pb.GetCallerRequest()))

    # ---- pipelines ---------------------------------------------------------

    def pipelines(self, *, env: str | None = None, project: str | None = None) -> list[PipelineSummary]:
        """The project's pipelines (``project``: the client's unless given)."""
        req = pb.ListPipelinesRequest(project=self._in(project), env=env or "")
        resp = self._rpc.call(self._rpc.stub.ListPipelines, req)
        return [PipelineSummary.from_proto(p) for p in resp.pipelines]

    def pipeline(self, name: str, *, env: str | None = None, project: str | None = None) -> Pipeline:
        """A pipeline's nodes and plan (``project``: the client's unless given)."""
        req = pb.GetPipelineRequest(project=self._in(project), name=name, env=env or "")
        resp = self._rpc.call(self._rpc.stub.GetPipeline, req)
        return Pipeline.from_proto(resp.pipeline)

    def validate(
        self,
        pipeline: str,
        *,
        env: str | None = None,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        select: Sequence[str] | None = None,
        project: str | None = None,
    ) -> Plan:
        """Check a pipeline without running anything and return its plan.

        Raises ``ValidationError`` whose ``violations`` list every problem found.
        ``project`` is the client's unless given.
        """
        req = pb.ValidatePipelineRequest(
            project=self._in(project),
            pipeline=pipeline,
            env=env or "",
            start_date=_date(start_date, "start_date"),
            end_date=_date(end_date, "end_date"),
            select=_names(select),
        )
        return Plan.from_proto(self._rpc.call(self._rpc.stub.ValidatePipeline, req).plan)

    # ---- runs --------------------------------------------------------------

    def execute(
        self,
        pipeline: str,
        *,
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        env: str | None = None,
        hyperparams: Mapping[str, Any] | None = None,
        model_version: str | None = None,
        select: Sequence[str] | None = None,
        max_workers: int | None = None,
        fail_fast: bool = False,
        request_id: str | None = None,
        priority: int = 0,
        no_wait: bool = False,
        project: str | None = None,
        full_refresh: Sequence[str] | None = None,
        reset_checkpoint: Sequence[str] | None = None,
    ) -> Run:
        """Start a run and return its handle at once; ``Run.wait()`` waits for it.

        The run is QUEUED until execd admits it (run limits, outputs another
        run is writing); higher ``priority`` goes first. With ``no_wait`` a run
        that cannot start at once is refused instead of queued.
        ``select`` takes dbt-style node selectors ("node", "+node", "node+").
        ``request_id`` makes the call idempotent: the same id in the same
        project returns the run the first call started. A fresh one is made when none is given, and a
        call that fails with UNAVAILABLE is retried once with it.
        ``project`` is the client's unless given.
        ``full_refresh`` names streaming nodes to rebuild from scratch: their
        checkpoint and sink data are deleted before their query starts, which
        then reprocesses its sources from the start. ``reset_checkpoint``
        names those whose checkpoint alone is deleted: the sink keeps its data
        and a Kafka source starts where the old checkpoint had committed.
        Each node is cleared once per run (a repair does not clear again).
        """
        req = pb.ExecutePipelineRequest(
            request_id=request_id or str(uuid.uuid4()),
            project=self._in(project),
            pipeline=pipeline,
            env=env or "",
            start_date=_date(start_date, "start_date"),
            end_date=_date(end_date, "end_date"),
            max_workers=max_workers or 0,
            model_version=model_version or "",
            select=_names(select),
            fail_fast=fail_fast,
            priority=priority,
            no_wait=no_wait,
            full_refresh=_names(full_refresh),
            reset_checkpoint=_names(reset_checkpoint),
        )
        if hyperparams:
            req.hyperparams.CopyFrom(_struct(hyperparams))
        resp = self._rpc.call(self._rpc.stub.ExecutePipeline, req)
        return Run(self._rpc, resp.run)

    def run(self, run_id: str, *, project: str | None = None) -> Run:
        """The run with this id; raises ``NotFound`` if there is none.

        A run id names one run of any project, so the client's project does
        not apply; a ``project`` given makes a run of another one NotFound.
        """
        resp = self._rpc.call(self._rpc.stub.GetRun, pb.GetRunRequest(run_id=run_id, project=project or ""))
        return Run(self._rpc, resp.run)

    def runs(
        self,
        pipeline: str | None = None,
        states: Iterable[RunState | str] | None = None,
        limit: int | None = None,
        *,
        project: str | None = None,
        page_size: int = 100,
    ) -> Runs:
        """Runs, newest first: a list fetched a page at a time as it is read.

        ``states`` filters by state (``RunState`` or its name, any case);
        ``limit`` stops after that many runs. Only runs of ``project`` (the
        client's unless given) are listed; ``project=""`` lists those of every
        project the caller may view. Iterating or indexing fetches
        only the pages it needs; ``len()`` fetches every page. In Jupyter it
        shows as a table of the first page.
        """
        wanted = [_run_state(s).value for s in states or ()]
        size = min(page_size, limit) if limit is not None else page_size
        in_project = self._in(project)

        def page(token: str) -> tuple[list[Run], str]:
            req = pb.ListRunsRequest(
                page_size=size, page_token=token, project=in_project, pipeline=pipeline or "", states=wanted
            )
            resp = self._rpc.call(self._rpc.stub.ListRuns, req)
            return [Run(self._rpc, r) for r in resp.runs], resp.next_page_token

        return Runs(page, limit=limit if size > 0 else 0)

    # ---- experiments -------------------------------------------------------

    def experiment(
        self,
        pipeline: str | None = None,
        *,
        declared: str | None = None,
        space: Sequence[Any] | Mapping[str, Any] | None = None,
        objective: str | None = None,
        node: str | None = None,
        maximize: bool = False,
        n_trials: int | None = None,
        max_parallel_trials: int | None = None,
        seed: int | None = None,
        sampler: str = "tpe",
        start_date: DateLike | None = None,
        end_date: DateLike | None = None,
        hyperparams: Mapping[str, Any] | None = None,
        select: Sequence[str] | None = None,
        env: str | None = None,
        request_id: str | None = None,
        project: str | None = None,
    ) -> Experiment:
        """Start a hyperparameter search and return its handle at once.

        Each trial is a run of ``pipeline`` with the trial's hyperparameters
        over ``hyperparams``; ``objective`` is the metric a node logs with
        ``ml_context["log_metric"]`` (minimised unless ``maximize``).
        ``space`` is a list of ``Real``/``Integer``/``Categorical`` (these or
        skopt's) or a mapping of names to them, ``(low, high)`` tuples or
        category lists. ``declared`` starts an experiment of the project's
        experiments config; the other arguments then override its settings.
        ``sampler="random"`` proposes at random (a baseline) instead of by
        Bayesian optimisation (TPE). ``project`` is the client's unless given.
        """
        if sampler not in ("tpe", "random"):
            raise ValueError(f"sampler must be 'tpe' or 'random', got {sampler!r}")
        req = pb.RunExperimentRequest(
            request_id=request_id or str(uuid.uuid4()),
            project=self._in(project),
            experiment=declared or "",
            pipeline=pipeline or "",
            env=env or "",
            select=_names(select),
            space=space_protos(space),
            n_trials=n_trials or 0,
            max_parallel_trials=max_parallel_trials or 0,
            start_date=_date(start_date, "start_date"),
            end_date=_date(end_date, "end_date"),
            sampler=pb.SAMPLER_RANDOM if sampler == "random" else pb.SAMPLER_TPE,
        )
        if seed is not None:
            req.seed = seed
        if objective or node or maximize:
            req.objective.CopyFrom(
                pb.Objective(
                    metric=objective or "",
                    node=node or "",
                    direction=pb.DIRECTION_MAXIMIZE if maximize else pb.DIRECTION_MINIMIZE,
                )
            )
        if hyperparams:
            req.hyperparams.CopyFrom(_struct(hyperparams))
        resp = self._rpc.call(self._rpc.stub.RunExperiment, req)
        return Experiment(self._rpc, resp.experiment)

    def experiment_by_id(self, experiment_id: str, *, project: str | None = None) -> Experiment:
        """The experiment with this id; raises ``NotFound`` if there is none.

        As for ``run()``, the client's project does not apply; a ``project``
        given makes an experiment of another one NotFound.
        """
        req = pb.GetExperimentRequest(experiment_id=experiment_id, project=project or "")
        resp = self._rpc.call(self._rpc.stub.GetExperiment, req)
        return Experiment(self._rpc, resp.experiment)

    def experiments(
        self,
        pipeline: str | None = None,
        limit: int | None = None,
        *,
        project: str | None = None,
        page_size: int = 50,
    ) -> Experiments:
        """Experiments, newest first: a list fetched a page at a time as it is read.

        Only experiments of ``project`` (the client's unless given) are
        listed; ``project=""`` lists those of every project the caller may
        view. Their trials are not listed: ``refresh()`` an experiment to read
        them. Iterating or indexing fetches only the pages it needs; ``len()``
        fetches every page. In Jupyter it shows as a table of the first page.
        """
        size = min(page_size, limit) if limit is not None else page_size
        in_project = self._in(project)

        def page(token: str) -> tuple[list[Experiment], str]:
            req = pb.ListExperimentsRequest(page_size=size, page_token=token, project=in_project, pipeline=pipeline or "")
            resp = self._rpc.call(self._rpc.stub.ListExperiments, req)
            return [Experiment(self._rpc, x) for x in resp.experiments], resp.next_page_token

        return Experiments(page, limit=limit if size > 0 else 0)

def _pem(value: PEM | None) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    return Path(value).read_bytes()


def _date(value: DateLike | None, name: str) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise TypeError(f"{name} must be a 'YYYY-MM-DD' string or a datetime.date, not {type(value).__name__}")


def _names(select: Sequence[str] | None) -> list[str]:
    if select is None:
        return []
    if isinstance(select, str):  # a lone selector, not its characters
        return [select]
    return list(select)


def _struct(values: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    try:
        s.update(dict(values))
    except (ValueError, TypeError) as err:
        raise TypeError(f"hyperparams must be JSON-like (str, number, bool, None, list, dict): {err}") from None
    return s


def _run_state(s: RunState | str) -> RunState:
    if isinstance(s, RunState):
        return s
    try:
        return RunState[s.upper()]
    except KeyError:
        names = ", ".join(m.name.lower() for m in RunState if m is not RunState.UNSPECIFIED)
        raise ValueError(f"unknown run state {s!r}; use one of {names}") from None
