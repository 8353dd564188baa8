"""The foreachBatch sink of a streaming node with a quarantine.

Spark Connect cannot write one streaming query to two places, and two queries
over the same source do not see the same micro-batches, so their counts could
not add up batch by batch. One query whose sink is this function can: each
micro-batch's kept rows are appended to the node's sink and the rest to its
quarantine, and the query's observation (taken before the split) counts the
very rows the two writes receive.

The batch is persisted for the two writes: each write runs the batch's plan,
and the observation in it would count every row once per write.

This module imports nothing of tauro_exec: it is pickled by value for the
Spark Connect server's Python workers, which need not have tauro_exec.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BatchWrite:
    """Where a micro-batch's rows are appended."""

    format: str
    path: str
    options: dict[str, str] = field(default_factory=dict)
    partition_by: tuple[str, ...] = ()
    # For delta: replaying a micro-batch after a failure writes nothing twice.
    txn_app_id: str = ""


def split_batches(keep: str, sink: BatchWrite, quarantine: BatchWrite) -> Callable[[Any, int], None]:
    """fn(batch_df, batch_id) appending the rows meeting keep to sink and the rest to quarantine."""
    # A NULL condition does not keep a row (as a filter), so it is quarantined.
    rejected = f"NOT coalesce(({keep}), false)"

    def split(batch_df: Any, batch_id: int) -> None:
        batch_df.persist()
        try:
            _append(batch_df.filter(keep), sink, batch_id)
            _append(batch_df.filter(rejected), quarantine, batch_id)
        finally:
            batch_df.unpersist()

    return split


def _append(df: Any, out: BatchWrite, batch_id: int) -> None:
    options = dict(out.options)
    if out.txn_app_id and out.format.lower() == "delta":
        options.update(txnAppId=out.txn_app_id, txnVersion=str(batch_id))
    writer = df.write.format(out.format).mode("append").options(**options)
    if out.partition_by:
        writer = writer.partitionBy(*out.partition_by)
    writer.save(out.path)
