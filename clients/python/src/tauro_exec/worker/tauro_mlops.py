"""tauro's mlops objects, as a node function written for tauro calls them, on the attempt's MLflow run.

In tauro a node's ``ml_context`` carries ``mlops_run_id`` and
``mlops_integration`` (tauro's MLOpsExecutorIntegration); through the latter
a node reaches ``mlops_context.experiment_tracker`` and
``mlops_context.model_registry``. Here the same names and call shapes map
onto the attempt's :class:`~tauro_exec.worker.tracking.Tracker` and
:class:`~tauro_exec.worker.tracking.Registry`, so such a node runs unchanged:

- ``mlops_run_id`` is the attempt's MLflow run (tauro's own run of the
  pipeline does not exist here: execd owns the runs);
- tracker calls take that run id first, as tauro's do; a metric goes
  through execd with its step;
- tauro's registry stores a file or folder as a model version; here it is
  logged to the run and registered in MLflow's registry, tauro's metadata
  (framework, artifact type, metrics, hyperparameters) as version tags and
  tauro's stages as aliases.

What has no meaning under execd (creating experiments, starting or ending
runs: execd does) is not offered, so a node that needs it fails plainly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from tauro_exec.worker.tracking import Registry, Tracker, TrackingUnavailable

log = logging.getLogger("tauro_exec.worker.tracking")


class ExperimentTracker:
    """tauro's ExperimentTracker calls, on the attempt's run only."""

    def __init__(self, tracker: Tracker) -> None:
        self._tracker = tracker

    def _check(self, run_id: str | None) -> None:
        own = self._tracker.run_id
        if run_id and own and run_id != own:
            raise ValueError(
                f"run {run_id} is not this node attempt's MLflow run ({own}): under execd a node logs to its "
                "own run, ml_context['mlops_run_id']"
            )

    def log_metric(self, run_id: str | None, key: str, value: float, step: int = 0, metadata: Mapping[str, Any] | None = None) -> None:
        self._check(run_id)
        self._tracker.log_metric(key, value, step)

    def log_parameter(self, run_id: str | None, key: str, value: Any) -> None:
        self._check(run_id)
        self._tracker.log_param(key, value)

    log_param = log_parameter

    def set_tag(self, run_id: str | None, key: str, value: str) -> None:
        self._check(run_id)
        self._tracker.set_tag(key, value)

    def set_note(self, run_id: str | None, note: str) -> None:
        self._check(run_id)
        self._tracker.set_tag("mlflow.note.content", note)  # the run's description in MLflow's UI

    def log_artifact(self, run_id: str | None, artifact_path: str, destination: str = "") -> str | None:
        """Uploads the file or folder under destination; returns its ``runs:/`` URI."""
        self._check(run_id)
        if not os.path.exists(artifact_path):
            raise FileNotFoundError(f"artifact not found: {artifact_path}")
        return self._tracker.log_artifact(artifact_path, destination.strip("/") or None)


@dataclass
class ModelMetadata:
    """tauro's ModelMetadata fields that a registered version has here."""

    name: str
    framework: str
    version: int
    created_at: str
    description: str = ""
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    stage: str = "Staging"


@dataclass
class ModelVersion:
    """tauro's ModelVersion, for a version in MLflow's registry."""

    model_id: str
    version: int
    metadata: ModelMetadata
    artifact_uri: str
    artifact_type: str
    created_at: str
    updated_at: str
    experiment_run_id: str | None = None
    size_bytes: int | None = None


class ModelRegistry:
    """tauro's ModelRegistry calls on MLflow's registry."""

    def __init__(self, registry: Registry, tracker: Tracker) -> None:
        self._registry = registry
        self._tracker = tracker

    def register_model(
        self,
        name: str,
        artifact_path: str,
        artifact_type: str = "generic",
        framework: str = "generic",
        description: str = "",
        hyperparameters: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
        input_schema: Mapping[str, str] | None = None,
        output_schema: Mapping[str, str] | None = None,
        dependencies: list[str] | None = None,
        experiment_run_id: str | None = None,
        *,
        hyperparams: Mapping[str, Any] | None = None,  # what tauro's integration passes
    ) -> ModelVersion | None:
        """Registers artifact_path (a local file or folder, logged to the run
        first, or a URI the tracker returned) as a new version of name."""
        own = self._tracker.run_id
        if experiment_run_id and own and experiment_run_id != own:
            raise ValueError(f"run {experiment_run_id} is not this node attempt's MLflow run ({own})")
        uri: str | None = artifact_path
        if os.path.exists(artifact_path):
            # A version is a folder in the run: the file, or the folder's contents.
            uri = self._tracker.log_artifact(artifact_path, f"registry/{name}")
            if uri is None:
                return None
            if os.path.isfile(artifact_path):
                uri = uri.rsplit("/", 1)[0]
        params = dict(hyperparameters or hyperparams or {})
        version_tags: dict[str, Any] = {"framework": framework, "artifact_type": artifact_type, **(tags or {})}
        version_tags.update({f"metric.{k}": v for k, v in (metrics or {}).items()})
        version_tags.update({f"param.{k}": v for k, v in params.items()})
        if dependencies:
            version_tags["dependencies"] = ",".join(dependencies)
        number = self._registry.register_model(name, uri, tags=version_tags, description=description or None)
        if number is None:
            return None
        now = datetime.now(timezone.utc).isoformat()
        stage = str((tags or {}).get("stage", "Staging"))
        meta = ModelMetadata(
            name=name,
            framework=framework,
            version=number,
            created_at=now,
            description=description,
            hyperparameters=params,
            metrics=dict(metrics or {}),
            tags={str(k): str(v) for k, v in (tags or {}).items()},
            stage=stage,
        )
        return ModelVersion(
            model_id=name,
            version=number,
            metadata=meta,
            artifact_uri=uri or "",
            artifact_type=artifact_type,
            created_at=now,
            updated_at=now,
            experiment_run_id=own,
        )

    def get_model_version(self, name: str, version: int | None = None) -> Any:
        """MLflow's ModelVersion: the one given or the latest."""
        return self._registry.get_version(name, version)

    def promote_model(self, name: str, version: int, stage: Any) -> Any:
        """tauro's stages are aliases in MLflow (stages are deprecated there):
        Production becomes alias ``production``."""
        alias = str(getattr(stage, "value", stage)).lower()
        self._registry.set_alias(name, alias, version)
        return self._registry.get_version(name, version)


@dataclass
class MLOpsContext:
    """tauro's MLOpsContext: the tracker and the registry."""

    experiment_tracker: ExperimentTracker
    model_registry: ModelRegistry


class MLOpsIntegration:
    """tauro's MLOpsExecutorIntegration, for the calls a node makes on it.

    Like tauro's, its helpers log a failure and go on; with the mlops block
    required, the failure fails the node instead.
    """

    def __init__(self, tracker: Tracker, registry: Registry) -> None:
        self._tracker = tracker
        self.mlops_context = MLOpsContext(ExperimentTracker(tracker), ModelRegistry(registry, tracker))
        self.active_run_id = tracker.run_id

    def is_available(self) -> bool:
        return self._tracker.run_id is not None

    def log_artifact(self, run_id: str, artifact_path: str, artifact_type: str = "model") -> str | None:
        if not run_id:
            return None
        try:
            return self.mlops_context.experiment_tracker.log_artifact(
                run_id, artifact_path, destination=f"artifacts/{artifact_type}"
            )
        except TrackingUnavailable:
            raise
        except Exception as e:  # tauro's integration warns and goes on
            log.warning("could not log artifact %s: %s", artifact_path, e)
            return None

    def register_model_from_run(
        self,
        run_id: str,
        model_name: str,
        artifact_path: str,
        artifact_type: str,
        framework: str,
        description: str = "",
        hyperparams: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> None:
        try:
            mv = self.mlops_context.model_registry.register_model(
                name=model_name,
                artifact_path=artifact_path,
                artifact_type=artifact_type,
                framework=framework,
                description=description,
                hyperparameters=hyperparams,
                metrics=metrics,
                tags=tags,
                experiment_run_id=run_id,
            )
        except TrackingUnavailable:
            raise
        except Exception as e:  # tauro's integration warns and goes on
            log.warning("could not register model %s: %s", model_name, e)
            return
        if mv is not None:
            log.info("registered model %s v%s from run %s", model_name, mv.version, run_id)

    def log_node_execution(
        self,
        run_id: str,
        node_name: str,
        status: str,
        duration_seconds: float,
        metrics: Mapping[str, float] | None = None,
        error: str | None = None,
    ) -> None:
        tracker = self.mlops_context.experiment_tracker
        tracker.log_parameter(run_id, f"node_{node_name}_status", status)
        tracker.log_metric(run_id, f"node_{node_name}_duration_seconds", duration_seconds)
        for key, value in (metrics or {}).items():
            if isinstance(value, (int, float)):
                tracker.log_metric(run_id, f"node_{node_name}_{key}", float(value))
        if error:
            tracker.log_parameter(run_id, f"node_{node_name}_error", error)

    def log_pipeline_metrics(self, run_id: str, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.mlops_context.experiment_tracker.log_metric(run_id, key, float(value))
