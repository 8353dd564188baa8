"""The peer benchmark's workloads, each two ways.

A workload is a tauro project that execd runs, and the same work written the
way a user would write it without execd: the same node functions (or SQL),
called in dependency order by a thread pool of the project's width, reading
the same inputs and writing the same outputs. hand.py runs the second form,
on a classic local SparkSession or over Spark Connect.

- sales_py, sales_sql: the two pipelines of examples/sales (five Python
  nodes with an ML-style scoring node; six SQL nodes with a Delta
  replaceWhere output).
- dag40_py, dag40_sql: a generated 40-node DAG, five wide and eight deep,
  each layer's first node joining two nodes of the layer before; Python
  nodes and the same work as SQL nodes.
- tauro_py, tauro_py_800k: a tauro-native project of six Python nodes,
  each reading what its upstream wrote (an input that is its output key),
  from a CSV read with schema inference and a JSON file, to parquet,
  partitioned parquet, CSV and JSON outputs; a four-node critical path
  (load_orders, enrich, by_country, score) at max_parallel_nodes 3; with
  2,000 and 800,000 orders (issue 25).
"""

from __future__ import annotations

import datetime as dt
import importlib
import pathlib
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SALES = ROOT / "examples" / "sales"

START, END = "2025-01-01", "2025-01-31"
WIDTH, DEPTH = 5, 8


@dataclass
class Output:
    format: str
    path: str  # relative to the workload's output root
    mode: str = "overwrite"
    partition_by: list[str] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Node:
    name: str
    # What the node reads, in order: "node:<name>" for an upstream node's
    # result, "src:<key>" for a source of Source.
    reads: list[str]
    outputs: list[Output]
    function: str = ""  # a Python node: module.function, under the project
    sql: str = ""  # a SQL node: reads sources and upstream results by name
    hyperparams: dict[str, Any] = field(default_factory=dict)  # the node's own, over the run's


@dataclass
class Source:
    format: str
    path: str  # absolute
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class Workload:
    name: str
    project: pathlib.Path
    pipeline: str
    width: int
    sources: dict[str, Source]
    nodes: list[Node]
    hyperparams: dict[str, Any] = field(default_factory=dict)
    model_version: str = ""
    # Where execd writes, relative to the project (tauro's output_path/env).
    execd_output: str = "output/dev"

    @property
    def python(self) -> bool:
        return any(n.function for n in self.nodes)


def _out_path(key: str) -> str:
    """tauro's rule for a schema.sub_folder.table key."""
    return "/".join(key.replace("/", ".").split("."))


def load(project: pathlib.Path, dotted: str) -> Callable[..., Any]:
    """A node function, imported from the project (in the hand-written job's process)."""
    if str(project) not in sys.path:
        sys.path.insert(0, str(project))
    module, _, fn = dotted.rpartition(".")
    return getattr(importlib.import_module(module), fn)  # type: ignore[no-any-return]


def _sales_nodes(project: pathlib.Path, pipeline: str) -> list[Node]:
    """The example's nodes, read from its config: the same SQL text and the
    same functions as execd runs, each output at the path tauro gives it."""
    cfg = project / "config"
    nodes_cfg = yaml.safe_load((cfg / "nodes.yaml").read_text())
    outputs_cfg = yaml.safe_load((cfg / "output.yaml").read_text())
    pipes = yaml.safe_load((cfg / "pipelines.yaml").read_text())
    producer: dict[str, str] = {}
    for name, n in nodes_cfg.items():
        for key in n.get("output", []):
            producer[key] = name
    out: list[Node] = []
    for name in pipes[pipeline]["nodes"]:
        n = nodes_cfg[name]
        reads: list[str] = []
        for key in n.get("input", []):
            reads.append(f"node:{producer[key]}" if key in producer else f"src:{key}")
        deps = n.get("dependencies", [])
        if isinstance(deps, str):
            deps = [deps]
        for d in deps:
            d = next(iter(d)) if isinstance(d, dict) else d
            if f"node:{d}" not in reads:
                reads.append(f"node:{d}")
        outs = []
        for key in n.get("output", []):
            o = outputs_cfg.get(key) or outputs_cfg[key.replace("/", ".")]
            opts: dict[str, str] = {}
            if o.get("overwrite_strategy") == "replaceWhere":
                col = o["partition_col"]
                opts["replaceWhere"] = f"{col} >= '{START}' AND {col} <= '{END}'"
            outs.append(Output(o["format"], _out_path(key), o.get("write_mode", "overwrite"), list(o.get("partition", [])), opts))
        fn = ""
        if "function" in n:
            fn = n["function"] if "module" not in n else f"{n['module']}.{n['function']}"
        out.append(Node(name, reads, outs, function=fn, sql=n.get("sql", ""), hyperparams=dict(n.get("hyperparams", {}))))
    return out


def sales(tmp: pathlib.Path, kind: str) -> Workload:
    """The sales example, copied into tmp with its data."""
    project = tmp / "sales"
    if not project.exists():
        shutil.copytree(SALES, project, ignore=shutil.ignore_patterns("output", "__pycache__", ".tauro-exec"))
        subprocess.run([sys.executable, str(project / "generate_data.py")], check=True, cwd=project, capture_output=True)
    glob = yaml.safe_load((project / "config" / "global_settings.yaml").read_text())
    pipes = yaml.safe_load((project / "config" / "pipelines.yaml").read_text())
    pipeline = "customer_insights" if kind == "py" else "daily_sales"
    hp = dict(glob.get("default_hyperparams", {}))
    hp.update(pipes[pipeline].get("hyperparams", {}))
    inputs = yaml.safe_load((project / "config" / "input.yaml").read_text())
    raw = inputs["raw_orders"]
    sources = {"raw_orders": Source(raw["format"], str(project / "data" / "orders.csv"), {k: str(v).lower() for k, v in raw["options"].items()})}
    return Workload(
        name=f"sales_{kind}",
        project=project,
        pipeline=pipeline,
        width=int(glob["max_parallel_nodes"]),
        sources=sources,
        nodes=_sales_nodes(project, pipeline),
        hyperparams=hp,
        model_version=pipes[pipeline].get("model_version", ""),
    )


DAG_FUNCTIONS = '''"""Node functions of the generated 40-node DAG."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def first(src: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return src.select("id", "k", (F.col("v") * 1.5).alias("v"))


def step(a: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return a.select("id", "k", (F.col("v") + 1).alias("v"))


def merge(a: DataFrame, b: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return a.join(b.select("id", F.col("v").alias("w")), "id").select("id", "k", ((F.col("v") + F.col("w")) / 2).alias("v"))
'''


def _dag_shape() -> list[tuple[str, list[str]]]:
    """(node, upstream nodes) in topological order: five wide, eight deep;
    in every layer after the first, node 0 joins nodes 0 and 4 of the
    layer before and every other node continues its own column."""
    shape: list[tuple[str, list[str]]] = []
    for layer in range(DEPTH):
        for i in range(WIDTH):
            if layer == 0:
                ups: list[str] = []
            elif i == 0:
                ups = [f"{layer - 1}_0", f"{layer - 1}_{WIDTH - 1}"]
            else:
                ups = [f"{layer - 1}_{i}"]
            shape.append((f"{layer}_{i}", ups))
    return shape


def dag(tmp: pathlib.Path, kind: str) -> Workload:
    """The generated DAG project (both kinds in one project) and one kind's nodes."""
    project = tmp / "dag40"
    shape = _dag_shape()
    if not project.exists():
        (project / "config").mkdir(parents=True)
        (project / "pipelines").mkdir()
        (project / "data").mkdir()
        (project / "pipelines" / "__init__.py").write_text("")
        (project / "pipelines" / "dag.py").write_text(DAG_FUNCTIONS)
        with (project / "data" / "source.csv").open("w") as f:
            f.write("id,k,v\n")
            for i in range(2000):
                f.write(f"{i},{i % 10},{(i * 7919) % 1000 / 10}\n")
        (project / "settings_yml.json").write_text(
            '{"base_path": ".", "env_config": {"base": {'
            '"global_settings_path": "config/global_settings.yaml", "pipelines_config_path": "config/pipelines.yaml",'
            '"nodes_config_path": "config/nodes.yaml", "input_config_path": "config/input.yaml",'
            '"output_config_path": "config/output.yaml"}, "dev": {}}}'
        )
        glob = {
            "project_name": "dag40", "input_path": "data", "output_path": "output", "mode": "local",
            "start_date": START, "end_date": END, "max_parallel_nodes": 4, "max_retries": 0,
            "allowed_module_prefixes": ["pipelines"], "spark_config": {"spark.sql.shuffle.partitions": "4"},
        }
        inputs = {"source": {"format": "csv", "filepath": "${input_path}/source.csv", "options": {"header": True, "inferSchema": True}}}
        nodes: dict[str, Any] = {}
        outputs: dict[str, Any] = {}
        pipes: dict[str, Any] = {}
        for k, prefix in (("py", "p"), ("sql", "s")):
            names = []
            for node, ups in shape:
                name = f"{prefix}{node}"
                key = f"gold.dag{k}.{name}"
                names.append(name)
                outputs[key] = {"format": "parquet", "write_mode": "overwrite"}
                if k == "py":
                    fn = "first" if not ups else ("merge" if len(ups) == 2 else "step")
                    reads = ["source"] if not ups else [f"gold.dagpy.p{u}" for u in ups]
                    nodes[name] = {"function": f"pipelines.dag.{fn}", "input": reads, "output": [key]}
                else:
                    nodes[name] = {"sql": _dag_sql(ups, prefix), "output": [key]}
                    if ups:
                        nodes[name]["dependencies"] = [f"{prefix}{u}" for u in ups]
                    else:
                        nodes[name]["input"] = ["source"]
            pipes[f"dag_{k}"] = {"type": "batch", "nodes": names}
        for fname, body in (("global_settings", glob), ("input", inputs), ("nodes", nodes), ("output", outputs), ("pipelines", pipes)):
            (project / "config" / f"{fname}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    prefix = "p" if kind == "py" else "s"
    nodes_list = []
    for node, ups in shape:
        name = f"{prefix}{node}"
        reads = ["src:source"] if not ups else [f"node:{prefix}{u}" for u in ups]
        out = [Output("parquet", f"gold/dag{kind}/{name}")]
        if kind == "py":
            fn = "first" if not ups else ("merge" if len(ups) == 2 else "step")
            nodes_list.append(Node(name, reads, out, function=f"pipelines.dag.{fn}"))
        else:
            nodes_list.append(Node(name, reads, out, sql=_dag_sql(ups, prefix)))
    return Workload(
        name=f"dag40_{kind}",
        project=project,
        pipeline=f"dag_{kind}",
        width=4,
        sources={"source": Source("csv", str(project / "data" / "source.csv"), {"header": "true", "inferSchema": "true"})},
        nodes=nodes_list,
    )


def _dag_sql(ups: list[str], prefix: str) -> str:
    if not ups:
        return "SELECT id, k, v * 1.5 AS v FROM source"
    if len(ups) == 1:
        return f"SELECT id, k, v + 1 AS v FROM {prefix}{ups[0]}"
    a, b = (f"{prefix}{u}" for u in ups)
    return f"SELECT a.id, a.k, (a.v + b.v) / 2 AS v FROM {a} a JOIN {b} b ON a.id = b.id"


TAURO_FUNCTIONS = '''"""Node functions of the tauro-style project."""

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


def load_orders(orders: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return (
        orders.where(F.col("quantity") > 0)
        .where(F.col("order_date").between(F.lit(start_date).cast("date"), F.lit(end_date).cast("date")))
        .withColumn("amount", F.round(F.col("quantity") * F.col("unit_price"), 2))
    )


def load_customers(customers: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return customers.select("customer_id", F.upper("country").alias("country"), "segment")


def enrich(orders: DataFrame, customers: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return orders.join(customers, "customer_id").select(
        "order_id", "order_date", "customer_id", "country", "segment", "product", "amount"
    )


def daily(orders: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return orders.groupBy("order_date").agg(
        F.count("*").alias("orders"), F.round(F.sum("amount"), 2).alias("revenue")
    )


def by_country(enriched: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return enriched.groupBy("country", "segment").agg(
        F.count("*").alias("orders"),
        F.round(F.sum("amount"), 2).alias("revenue"),
        F.countDistinct("customer_id").alias("customers"),
    )


def score(totals: DataFrame, *, start_date: str, end_date: str) -> DataFrame:
    return totals.select(
        "country", "segment", F.round(F.col("revenue") / F.col("customers"), 4).alias("revenue_per_customer"),
        F.when(F.col("revenue") > 1000, "high").otherwise("low").alias("band"),
    )
'''

COUNTRIES = ("es", "fr", "de", "it", "pt", "nl", "be", "pl")
PRODUCTS = ("apple", "bread", "cheese", "dates", "eggs", "flour", "grapes", "honey", "ink", "jam")
SEGMENTS = ("retail", "business", "online")

# node -> (function, inputs, outputs); an input that is an upstream's output
# key is read, as tauro does, from what that node made.
TAURO_NODES: dict[str, tuple[str, list[str], list[tuple[str, dict[str, Any]]]]] = {
    "load_orders": ("load_orders", ["raw_orders"], [("silver.shop.orders", {"format": "parquet"})]),
    "load_customers": ("load_customers", ["raw_customers"], [("silver.shop.customers", {"format": "parquet"})]),
    "enrich": ("enrich", ["silver.shop.orders", "silver.shop.customers"],
               [("gold.shop.enriched", {"format": "parquet", "partition": ["country"]})]),
    "daily": ("daily", ["silver.shop.orders"], [("gold.shop.daily", {"format": "json"})]),
    "by_country": ("by_country", ["gold.shop.enriched"],
                   [("gold.shop.by_country", {"format": "csv", "options": {"header": "true"}})]),
    "score": ("score", ["gold.shop.by_country"], [("gold.shop.score", {"format": "json"})]),
}


def _tauro_data(data: pathlib.Path, orders: int) -> None:
    """Deterministic orders (CSV) and customers (JSON lines): the same
    bytes every time for the same size."""
    customers = max(orders // 20, 50)
    with (data / "orders.csv").open("w") as f:
        f.write("order_id,order_date,customer_id,product,quantity,unit_price\n")
        for i in range(orders):
            day = 1 + (i * 7) % 31
            qty = (i * 13) % 7 - 1  # some zero and negative quantities are dropped
            price = 1 + (i * 7919) % 5000 / 100
            f.write(f"{i},2025-01-{day:02d},{(i * 31) % customers},{PRODUCTS[i % len(PRODUCTS)]},{qty},{price}\n")
    with (data / "customers.json").open("w") as f:
        for c in range(customers):
            f.write(f'{{"customer_id": {c}, "country": "{COUNTRIES[(c * 3) % len(COUNTRIES)]}", '
                    f'"segment": "{SEGMENTS[c % len(SEGMENTS)]}"}}\n')


def tauro(tmp: pathlib.Path, orders: int) -> Workload:
    """The tauro-style project with this many orders."""
    name = "tauro_py" if orders == 2000 else f"tauro_py_{orders // 1000}k"
    project = tmp / name
    sources = {
        "raw_orders": Source("csv", str(project / "data" / "orders.csv"), {"header": "true", "inferSchema": "true"}),
        "raw_customers": Source("json", str(project / "data" / "customers.json")),
    }
    if not project.exists():
        (project / "config").mkdir(parents=True)
        (project / "pipelines").mkdir()
        (project / "data").mkdir()
        (project / "pipelines" / "__init__.py").write_text("")
        (project / "pipelines" / "shop.py").write_text(TAURO_FUNCTIONS)
        _tauro_data(project / "data", orders)
        (project / "settings_yml.json").write_text(
            '{"base_path": ".", "env_config": {"base": {'
            '"global_settings_path": "config/global_settings.yaml", "pipelines_config_path": "config/pipelines.yaml",'
            '"nodes_config_path": "config/nodes.yaml", "input_config_path": "config/input.yaml",'
            '"output_config_path": "config/output.yaml"}, "dev": {}}}'
        )
        glob = {
            "project_name": "shop", "input_path": "data", "output_path": "output", "mode": "local",
            "start_date": START, "end_date": END, "max_parallel_nodes": 3, "max_retries": 0,
            "allowed_module_prefixes": ["pipelines"], "spark_config": {"spark.sql.shuffle.partitions": "4"},
        }
        inputs = {
            "raw_orders": {"format": "csv", "filepath": "${input_path}/orders.csv", "options": {"header": True, "inferSchema": True}},
            "raw_customers": {"format": "json", "filepath": "${input_path}/customers.json"},
        }
        nodes = {n: {"function": f"pipelines.shop.{fn}", "input": ins, "output": [k for k, _ in outs]}
                 for n, (fn, ins, outs) in TAURO_NODES.items()}
        outputs = {k: {**o, "write_mode": "overwrite"} for _, _, outs in TAURO_NODES.values() for k, o in outs}
        pipes = {"shop": {"type": "batch", "nodes": list(TAURO_NODES)}}
        for fname, body in (("global_settings", glob), ("input", inputs), ("nodes", nodes), ("output", outputs), ("pipelines", pipes)):
            (project / "config" / f"{fname}.yaml").write_text(yaml.safe_dump(body, sort_keys=False))
    producer = {k: n for n, (_, _, outs) in TAURO_NODES.items() for k, _ in outs}
    nodes_list = [
        Node(
            n,
            [f"node:{producer[i]}" if i in producer else f"src:{i}" for i in ins],
            [Output(o["format"], _out_path(k), partition_by=list(o.get("partition", [])), options=dict(o.get("options", {})))
             for k, o in outs],
            function=f"pipelines.shop.{fn}",
        )
        for n, (fn, ins, outs) in TAURO_NODES.items()
    ]
    return Workload(name=name, project=project, pipeline="shop", width=3, sources=sources, nodes=nodes_list)


MAKERS: dict[str, Callable[[pathlib.Path], Workload]] = {
    "sales_py": lambda tmp: sales(tmp, "py"),
    "sales_sql": lambda tmp: sales(tmp, "sql"),
    "dag40_py": lambda tmp: dag(tmp, "py"),
    "dag40_sql": lambda tmp: dag(tmp, "sql"),
    "tauro_py": lambda tmp: tauro(tmp, 2000),
    "tauro_py_800k": lambda tmp: tauro(tmp, 800_000),
}


def dates() -> tuple[dt.date, dt.date]:
    return dt.date.fromisoformat(START), dt.date.fromisoformat(END)
