"""The tracker and the registry of one node attempt, bound to the attempt's own MLflow run.

execd creates each ML node attempt's MLflow child run before the call and
names it in ``RunNodeRequest.context.mlflow``. What the node logs goes there:

- metrics travel as WorkerMetric events through execd, never straight to
  MLflow, because execd mirrors them durably (it keeps them when the tracking
  server is away and sends them later);
- params, tags, artifacts and models go straight to the tracking server
  with an ``MlflowClient`` of the attempt's tracking URI, so nothing in the
  worker's global MLflow state (which every call of the worker shares)
  changes;
- the registry registers versions whose run is this attempt's run.

When the attempt has no MLflow run (the server did not answer before the
call: ``run_id`` is empty), what only the server can take cannot be logged.
A call that needs the server then warns and returns None, or, when the
pipeline's mlops block is ``required``, raises :class:`TrackingUnavailable`.

mlflow is imported only when a call needs it, so a worker without the
``mlops`` extra runs every other node.
"""

from __future__ import annotations

import logging
import math
import numbers
import os
import posixpath
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from tauro_exec.ml import LogMetric, MlflowInfo, Retryable

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion

    from tauro_exec._proto.tauro.exec.v1 import worker_pb2 as pb

log = logging.getLogger("tauro_exec.worker.tracking")


T = TypeVar("T")


class TrackingUnavailable(Retryable):
    """A tracker call that needs the MLflow server could not be made and the
    pipeline's mlops block is ``required``.

    It is retryable: the next attempt gets a new MLflow run from execd, which
    may reach the server by then.
    """


@dataclass(frozen=True)
class MlflowTarget:
    """Where an attempt writes in MLflow, as execd gave it."""

    tracking_uri: str = ""
    experiment_id: str = ""
    run_id: str = ""
    parent_run_id: str = ""
    required: bool = False

    @classmethod
    def from_proto(cls, m: pb.MlflowContext) -> MlflowTarget:
        return cls(m.tracking_uri, m.experiment_id, m.run_id, m.parent_run_id, m.required)

    @property
    def url(self) -> str | None:
        """The run's page in the MLflow UI, when the server is an HTTP one."""
        if not self.run_id or not self.tracking_uri.startswith(("http://", "https://")):
            return None
        return f"{self.tracking_uri.rstrip('/')}/#/experiments/{self.experiment_id}/runs/{self.run_id}"

    def info(self) -> MlflowInfo | None:
        """What ml_context["mlflow"] shows; None without a tracking server."""
        if not self.tracking_uri:
            return None
        return MlflowInfo(
            tracking_uri=self.tracking_uri,
            experiment_id=self.experiment_id,
            run_id=self.run_id or None,
            parent_run_id=self.parent_run_id or None,
            required=self.required,
            url=self.url,
        )


def metric_sink(put: Callable[[str, float, int], None]) -> LogMetric:
    """Checks a metric as MLflow would take it before it is sent: a name, a
    finite number and an integer step."""

    def send(name: str, value: float, step: int = 0) -> None:
        number = float(value)
        if not name or not math.isfinite(number):
            raise ValueError(f"log_metric needs a name and a finite number, got {name!r}={value!r}")
        if isinstance(step, bool) or not isinstance(step, numbers.Integral):  # numpy's integers are welcome
            raise ValueError(f"log_metric's step must be an integer, got {step!r}")
        put(str(name), number, int(step))

    return send


class _Server:
    """The attempt's MLflow client and the rule for calls it cannot make."""

    def __init__(self, target: MlflowTarget) -> None:
        self.target = target
        self._client: MlflowClient | None = None

    def client(self, what: str) -> MlflowClient | None:
        """The client to make ``what`` with, or None (after a warning) when
        the attempt has no MLflow run."""
        if not self.target.tracking_uri:
            self.unavailable(
                what, "this node attempt has no MLflow run (the pipeline's mlops block is off, or the node is not an ML node)"
            )
            return None
        if not self.target.run_id:
            self.unavailable(
                what,
                f"the MLflow tracking server at {self.target.tracking_uri} did not answer before the node started, "
                "so this attempt has no MLflow run (its metrics still reach MLflow through execd)",
            )
            return None
        if self._client is None:
            try:
                from mlflow import MlflowClient
            except ImportError as e:
                raise ImportError(
                    f"{what}: the worker's Python has no MLflow; pip install 'tauro-exec[mlops]' ({e})"
                ) from e
            self._client = MlflowClient(tracking_uri=self.target.tracking_uri, registry_uri=self.target.tracking_uri)
        return self._client

    def unavailable(self, what: str, why: str, cause: BaseException | None = None) -> None:
        message = f"{what}: {why}"
        if self.target.required:
            raise TrackingUnavailable(message + "; the pipeline's mlops block is required, so the node fails") from cause
        log.warning("%s; the node goes on without it", message)

    def call(self, what: str, fn: Callable[[MlflowClient], T]) -> T | None:
        """fn(client), or the unavailable rule when there is no run or the
        server refuses or does not answer."""
        client = self.client(what)
        if client is None:
            return None
        from mlflow.exceptions import MlflowException

        try:
            return fn(client)
        except MlflowException as e:
            status: int = e.get_http_status_code()  # type: ignore[no-untyped-call]
            if 400 <= status < 500:
                raise  # the call was wrong (a name, a value): the node's bug, not the server's absence
            self.unavailable(what, f"MLflow at {self.target.tracking_uri} failed: {e}", e)
        except OSError as e:
            self.unavailable(what, f"MLflow at {self.target.tracking_uri} failed: {e}", e)
        return None


class Tracker:
    """Logs to the node attempt's own MLflow run.

    ``log_metric`` sends through execd (with its step); ``log_param``,
    ``set_tag``, ``log_artifact`` and ``log_model`` write to the run in MLflow.
    """

    def __init__(self, target: MlflowTarget, metric: LogMetric) -> None:
        self._server = _Server(target)
        self._metric = metric
        self.last_model_uri: str | None = None

    @property
    def run_id(self) -> str | None:
        return self._server.target.run_id or None

    @property
    def target(self) -> MlflowTarget:
        return self._server.target

    # -- through execd --

    def log_metric(self, key: str, value: float, step: int = 0) -> None:
        self._metric(key, value, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int = 0) -> None:
        for key, value in metrics.items():
            self._metric(key, value, step)

    # -- straight to the run --

    def log_param(self, key: str, value: Any) -> None:
        run_id = self._server.target.run_id
        self._server.call(f"param {key} was not logged", lambda c: c.log_param(run_id, key, value))

    def log_params(self, params: Mapping[str, Any]) -> None:
        def batch(c: MlflowClient) -> None:
            from mlflow.entities import Param

            c.log_batch(run_id, params=[Param(str(k), str(v)) for k, v in params.items()])

        run_id = self._server.target.run_id
        self._server.call(f"params {', '.join(params)} were not logged", batch)

    def set_tag(self, key: str, value: Any) -> None:
        run_id = self._server.target.run_id
        self._server.call(f"tag {key} was not set", lambda c: c.set_tag(run_id, key, value))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        def batch(c: MlflowClient) -> None:
            from mlflow.entities import RunTag

            c.log_batch(run_id, tags=[RunTag(str(k), str(v)) for k, v in tags.items()])

        run_id = self._server.target.run_id
        self._server.call(f"tags {', '.join(tags)} were not set", batch)

    def log_artifact(self, local_path: str | os.PathLike[str], artifact_path: str | None = None) -> str | None:
        """Uploads a file or a directory (its contents) to the run, under
        artifact_path; returns its ``runs:/`` URI, or None when not logged."""
        path = os.fspath(local_path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"log_artifact: {path} does not exist")
        run_id = self._server.target.run_id
        is_dir = os.path.isdir(path)

        def upload(c: MlflowClient) -> bool:
            if is_dir:
                c.log_artifacts(run_id, path, artifact_path)
            else:
                c.log_artifact(run_id, path, artifact_path)
            return True

        if not self._server.call(f"artifact {path} was not logged", upload):
            return None
        where = (artifact_path or "") if is_dir else posixpath.join(artifact_path or "", os.path.basename(path))
        return _runs_uri(run_id, where)

    def log_artifacts(self, local_dir: str | os.PathLike[str], artifact_path: str | None = None) -> str | None:
        path = os.fspath(local_dir)
        if not os.path.isdir(path):
            raise NotADirectoryError(f"log_artifacts: {path} is not a directory")
        return self.log_artifact(path, artifact_path)

    def log_model(self, model: Any, name: str = "model", **save_options: Any) -> str | None:
        """Saves the model in MLflow's format for its flavour (scikit-learn,
        Spark ML) and logs it to the run as artifact ``name``; returns its
        ``runs:/`` URI, which ``register_model`` takes by default, or None when
        the attempt has no run to log it to."""
        from tauro_exec.worker import flavours

        flavour = flavours.detect(model)  # an unsupported model fails even without a run
        if self._server.client(f"model {name} was not logged") is None:
            return None
        with tempfile.TemporaryDirectory(prefix="tauro-model-") as tmp:
            local = os.path.join(tmp, name.strip("/").replace("/", "_") or "model")
            flavour.save(model, local, save_options)
            uri = self.log_artifact(local, name)
        if uri is not None:
            self.last_model_uri = uri
        return uri


class Registry:
    """The MLflow model registry, registering versions of the attempt's run."""

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker
        self._server = tracker._server

    def register_model(
        self,
        name: str,
        model_uri: str | None = None,
        *,
        tags: Mapping[str, Any] | None = None,
        alias: str | None = None,
        description: str | None = None,
    ) -> int | None:
        """Registers model_uri (by default the model this attempt logged last)
        as a new version of registered model ``name``, creating it when
        missing; returns the version number."""
        uri = model_uri or self._tracker.last_model_uri
        if not name:
            raise ValueError("register_model needs the registered model's name")
        if uri is None:
            if self._server.client(f"no version of model {name} was registered") is None:
                return None  # nothing was logged because there is no run
            raise ValueError(f"register_model({name!r}) has no model_uri and this node logged no model: call log_model first")
        version_tags = {str(k): str(v) for k, v in (tags or {}).items()}

        def register(c: MlflowClient) -> int:
            from mlflow.exceptions import MlflowException

            source, run_id = _source(c, uri)
            try:
                c.create_registered_model(name)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
            mv = c.create_model_version(name, source, run_id=run_id, tags=version_tags, description=description)
            if alias:
                c.set_registered_model_alias(name, alias, mv.version)
            return int(mv.version)

        return self._server.call(f"no version of model {name} was registered", register)

    def set_alias(self, name: str, alias: str, version: int | str) -> None:
        self._server.call(
            f"alias {alias} of model {name} was not set", lambda c: c.set_registered_model_alias(name, alias, str(version))
        )

    def get_version(self, name: str, version: int | str | None = None, *, alias: str | None = None) -> ModelVersion | None:
        """A registered version: the one given, the alias's, or the latest."""

        def get(c: MlflowClient) -> ModelVersion:
            if alias:
                return c.get_model_version_by_alias(name, alias)
            if version is not None:
                return c.get_model_version(name, str(version))
            versions = c.search_model_versions(f"name = '{_quoted(name)}'")
            if not versions:
                raise ValueError(f"registered model {name!r} has no versions")
            return max(versions, key=lambda v: int(v.version))

        return self._server.call(f"model {name}'s version was not read", get)

    def load_model(self, model_uri: str) -> Any:
        """Loads a model this worker can use from ``runs:/``, ``models:/`` or
        an artifact URI: a Spark ML model into the node's Spark session, a
        scikit-learn model as itself, anything else as an MLflow pyfunc."""
        from tauro_exec.worker import flavours

        if self._server.client(f"model {model_uri} was not loaded") is None:
            return None
        target = self._server.target
        with tempfile.TemporaryDirectory(prefix="tauro-model-") as tmp:
            from mlflow.artifacts import download_artifacts

            def download(c: MlflowClient) -> str:
                # mlflow resolves models:/ with the process's global registry
                # URI whatever it is given, so the version's source is looked
                # up here, on the attempt's server.
                return str(
                    download_artifacts(
                        artifact_uri=_version_source(c, model_uri), dst_path=tmp, tracking_uri=target.tracking_uri
                    )
                )

            local = self._server.call(f"model {model_uri} was not loaded", download)
            if local is None:
                return None
            return flavours.load(local)


def _runs_uri(run_id: str, path: str) -> str:
    return f"runs:/{run_id}/{path.strip('/')}" if path.strip("/") else f"runs:/{run_id}"


def _source(c: MlflowClient, uri: str) -> tuple[str, str | None]:
    """The artifact location and run a model version is registered from."""
    if uri.startswith("runs:/"):
        run_id, _, path = uri[len("runs:/") :].partition("/")
        root = c.get_run(run_id).info.artifact_uri
        return (posixpath.join(root, path) if path else root), run_id
    return uri, None


def _version_source(c: MlflowClient, uri: str) -> str:
    """Where a ``models:/name/version[/path]`` or ``models:/name@alias[/path]``
    URI points; any other URI as it is."""
    if not uri.startswith("models:/"):
        return uri
    rest = uri[len("models:/") :].strip("/")
    first, _, tail = rest.partition("/")
    if "@" in first:
        name, _, alias = first.partition("@")
        mv = c.get_model_version_by_alias(name, alias)
        path = tail
    else:
        version, _, path = tail.partition("/")
        if not version:
            raise ValueError(f"{uri} names no version or alias: use models:/NAME/VERSION or models:/NAME@ALIAS")
        mv = c.get_model_version(first, version)
    source = str(mv.source)
    return posixpath.join(source, path) if path else source


def _quoted(name: str) -> str:
    return name.replace("'", "\\'")

