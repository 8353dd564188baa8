"""Saving and loading the models a node logs, per flavour, in MLflow's model format.

scikit-learn goes through ``mlflow.sklearn``. Spark ML cannot: a model trained
through Spark Connect lives on the server, and ``mlflow.spark`` needs the
classic JVM gateway. So the Spark Connect server writes the model
(``model.write().save``), to a folder the worker can read, and the folder is
wrapped in an MLmodel with

- the ``spark`` flavour as ``mlflow.spark`` writes it (a PipelineModel in
  ``sparkml``), so that classic Spark loads it with ``mlflow.spark.load_model``;
- a ``python_function`` flavour whose loader is this module, so that
  ``mlflow.pyfunc.load_model`` works over Spark Connect too.

The server writes where the worker reads: a local temporary folder, which is
right when both run on one machine (execd's own Spark server), or
``staging_dir=`` naming a folder both see (a shared mount) otherwise.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SPARK_DATA = "sparkml"


@dataclass(frozen=True)
class Flavour:
    """How one kind of model is saved into an MLflow model folder."""

    name: str
    save: Callable[[Any, str, dict[str, Any]], None]


def detect(model: object) -> Flavour:
    """The flavour of model, by its class; a TypeError names the supported ones."""
    for cls in type(model).__mro__:
        module = cls.__module__ or ""
        if module.startswith("sklearn.") and cls.__name__ == "BaseEstimator":
            return Flavour("sklearn", _save_sklearn)
        if module == "pyspark.ml.base" and cls.__name__ == "Transformer":
            return Flavour("spark", _save_spark)
    kind = type(model)
    raise TypeError(
        f"log_model cannot log a {kind.__module__}.{kind.__qualname__}: it logs scikit-learn estimators "
        "and Spark ML models (pyspark.ml Transformer, Model or PipelineModel); log other files with log_artifact"
    )


def _save_sklearn(model: Any, path: str, options: dict[str, Any]) -> None:
    import mlflow.sklearn

    if not {"pip_requirements", "extra_pip_requirements", "conda_env"} & options.keys():
        # What the model needs is scikit-learn and cloudpickle; mlflow's own
        # guess imports the model in a subprocess, which takes seconds a node
        # should not spend. A node that needs more passes pip_requirements.
        options["pip_requirements"] = mlflow.sklearn.get_default_pip_requirements()
    mlflow.sklearn.save_model(model, path, **options)


def _save_spark(model: Any, path: str, options: dict[str, Any]) -> None:
    import mlflow.pyfunc
    import pyspark
    from mlflow.models import Model
    from pyspark.ml import PipelineModel

    staging = options.pop("staging_dir", None)
    if options:
        raise TypeError(f"log_model of a Spark ML model takes only staging_dir=, not {', '.join(sorted(options))}")
    # As mlflow.spark does: one layout, a PipelineModel, whatever was trained.
    pipeline = model if isinstance(model, PipelineModel) else PipelineModel(stages=[model])
    os.makedirs(path)
    data = os.path.join(path, SPARK_DATA)
    written = os.path.join(os.fspath(staging), f"tauro-model-{uuid.uuid4().hex}") if staging else data
    pipeline.write().overwrite().save(written)
    if not os.path.isdir(os.path.join(written, "metadata")):
        raise RuntimeError(
            f"the Spark Connect server saved the model to {written}, which this worker cannot read: the server runs "
            "on another machine. Pass log_model(..., staging_dir=PATH) with a folder the server and the worker both see"
        )
    if staging:
        shutil.copytree(written, data)
        shutil.rmtree(written, ignore_errors=True)
    mlmodel = Model()
    mlmodel.add_flavor(
        "spark", pyspark_version=pyspark.__version__, model_data=SPARK_DATA, model_class=type(model).__module__ + "." + type(model).__qualname__
    )
    mlflow.pyfunc.add_to_model(mlmodel, loader_module=__name__, data=SPARK_DATA)
    mlmodel.save(os.path.join(path, "MLmodel"))


def load(path: str) -> Any:
    """The model in a local MLflow model folder: a Spark ML PipelineModel in
    the active Spark session, a scikit-learn estimator, or else a pyfunc."""
    from mlflow.models import Model

    mlmodel = os.path.join(path, "MLmodel")
    if not os.path.exists(mlmodel):
        raise ValueError(f"{path} is not an MLflow model (it has no MLmodel file)")
    flavours = Model.load(mlmodel).flavors
    if "spark" in flavours:
        from pyspark.ml import PipelineModel

        return PipelineModel.load(os.path.join(path, flavours["spark"].get("model_data", SPARK_DATA)))
    if "sklearn" in flavours:
        import mlflow.sklearn

        return mlflow.sklearn.load_model(path)
    import mlflow.pyfunc

    return mlflow.pyfunc.load_model(path)


class SparkPyfunc:
    """A Spark ML model as MLflow's python_function: pandas in, pandas out,
    transformed in the active Spark (Connect) session."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        from pyspark.sql import SparkSession

        spark = SparkSession.getActiveSession()
        if spark is None:
            raise RuntimeError("predicting with a Spark ML model needs an active Spark session")
        return self.model.transform(spark.createDataFrame(model_input)).toPandas()


def _load_pyfunc(path: str) -> SparkPyfunc:
    """mlflow.pyfunc's loader for the Spark ML models this module saves."""
    from pyspark.ml import PipelineModel

    return SparkPyfunc(PipelineModel.load(path))
