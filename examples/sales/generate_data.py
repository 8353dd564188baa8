"""Write the sales example's input: data/orders.csv, the same rows every time.

Run by `make demo` before the pipeline. January and February 2025, a few
stores, products and customers, and a handful of bad lines (zero quantity,
missing price) that the reject_orders node picks out and clean_orders'
has_price expectation counts.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import pathlib
import random

HEADER = ["order_id", "customer_id", "store_id", "product_id", "order_date", "quantity", "unit_price"]


def rows(seed: int, days: int, per_day: int) -> list[list[object]]:
    rnd = random.Random(seed)
    start = dt.date(2025, 1, 1)
    out: list[list[object]] = []
    order_id = 1000
    for day in range(days):
        date = start + dt.timedelta(days=day)
        for _ in range(per_day):
            order_id += 1
            quantity: object = rnd.randint(1, 5)
            price: object = round(rnd.uniform(2.0, 250.0), 2)
            if order_id % 97 == 0:
                quantity = 0
            if order_id % 131 == 0:
                price = ""
            out.append([
                order_id,
                f"C{rnd.randint(1, 40):03d}",
                f"S{rnd.randint(1, 5)}",
                f"P{rnd.randint(1, 12):02d}",
                date.isoformat(),
                quantity,
                price,
            ])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default=str(pathlib.Path(__file__).parent / "data" / "orders.csv"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--days", type=int, default=59)
    parser.add_argument("--per-day", type=int, default=40)
    args = parser.parse_args()
    path = pathlib.Path(args.out)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(HEADER)
        writer.writerows(rows(args.seed, args.days, args.per_day))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
