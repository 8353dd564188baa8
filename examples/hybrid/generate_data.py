"""Write the hybrid example's input: the store list, and order files on demand.

    generate_data.py                    data/stores.csv, and an empty data/incoming_orders/
    generate_data.py --drop 2           two more order files in data/incoming_orders/

The store list is the same every time: eight stores in four regions, one of
them closed (build_stores leaves it out, so its orders join nothing). Order
files are numbered from the ones already there (orders-0001.csv, ...) and
each holds the same lines for the same number, with order ids unique across
files. A file appears whole: it is written under a name Spark ignores (a
leading dot) and renamed, so the stream never reads half of one.

Starting over with a stream means starting over with its checkpoint too: the
stream remembers the files it has read by name, so remove output/ as well
(examples/demo.py does).
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import pathlib
import random

HERE = pathlib.Path(__file__).resolve().parent
STORE_HEADER = ["store_id", "name", "city", "region", "closed_on"]
ORDER_HEADER = ["order_id", "store_id", "product_id", "quantity", "unit_price", "ordered_at"]

STORES = [
    ["S1", "Harbour", "Lisbon", "south"],
    ["S2", "Old Town", "Porto", "north"],
    ["S3", "Riverside", "Coimbra", "centre"],
    ["S4", "Market Hall", "Braga", "north"],
    ["S5", "Seafront", "Faro", "south"],
    ["S6", "Station", "Aveiro", "centre", "2024-11-30"],  # closed: not in the dimension
    ["S7", "Airport", "Lisbon", "south"],
    ["S8", "Online", "Lisbon", "online"],
]


def order_lines(number: int, lines: int) -> list[list[object]]:
    """The lines of order file `number` (from 1); ids are number * 1000 + line."""
    rnd = random.Random(number)
    start = dt.datetime(2025, 3, 1, 9, 0, 0) + dt.timedelta(hours=number)
    out: list[list[object]] = []
    for i in range(1, lines + 1):
        out.append([
            number * 1000 + i,
            f"S{rnd.randint(1, 8)}",
            f"P{rnd.randint(1, 12):02d}",
            rnd.randint(1, 4),
            round(rnd.uniform(1.5, 120.0), 2),
            (start + dt.timedelta(seconds=37 * i)).strftime("%Y-%m-%d %H:%M:%S"),
        ])
    return out


def write_stores(data: pathlib.Path) -> pathlib.Path:
    """data/stores.csv, and an empty data/incoming_orders/."""
    data.mkdir(parents=True, exist_ok=True)
    path = data / "stores.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(STORE_HEADER)
        writer.writerows(s + [""] * (len(STORE_HEADER) - len(s)) for s in STORES)
    incoming = data / "incoming_orders"
    incoming.mkdir(exist_ok=True)
    for old in incoming.iterdir():
        if old.is_file():
            old.unlink()
    return path


def drop_orders(incoming: pathlib.Path, files: int, lines: int) -> list[pathlib.Path]:
    """Write the next `files` order files into `incoming`, each whole at once."""
    incoming.mkdir(parents=True, exist_ok=True)
    first = len(list(incoming.glob("orders-*.csv"))) + 1
    written = []
    for number in range(first, first + files):
        path = incoming / f"orders-{number:04d}.csv"
        tmp = incoming / f".{path.name}.tmp"
        with tmp.open("w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(ORDER_HEADER)
            writer.writerows(order_lines(number, lines))
        os.replace(tmp, path)
        written.append(path)
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(HERE / "data"), help="the example's data folder")
    parser.add_argument("--drop", type=int, metavar="FILES", help="drop this many more order files instead")
    parser.add_argument("--lines", type=int, default=20, help="order lines per file")
    args = parser.parse_args()
    data = pathlib.Path(args.data)
    if args.drop is None:
        print(f"wrote {write_stores(data)} and an empty {data / 'incoming_orders'}")
        return
    for path in drop_orders(data / "incoming_orders", args.drop, args.lines):
        print(f"dropped {path}")


if __name__ == "__main__":
    main()
