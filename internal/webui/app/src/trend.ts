// A node's expectations across the pipeline's recent runs: the share of rows
// each one failed, oldest run first, for the run page's panel.

import type { Run } from "./api";

// How many of the pipeline's newest runs the trend looks at.
export const TREND_RUNS = 20;

export interface Trend {
  name: string;
  // The failed share (0..1) in each run whose node counted it, oldest first.
  failedShare: number[];
}

/** expectationTrends reads node's expectations from runs (newest first, as ListRuns gives them). */
export function expectationTrends(runs: Run[], node: string): Trend[] {
  const byName = new Map<string, number[]>();
  for (const r of [...runs].reverse()) {
    const attempts = r.nodes.find((n) => n.name === node)?.attempts ?? [];
    const last = attempts[attempts.length - 1];
    for (const x of last?.expectations ?? []) {
      const seen = x.passed + x.failed;
      const share = seen > 0n ? Number(x.failed) / Number(seen) : 0;
      const series = byName.get(x.name) ?? [];
      series.push(share);
      byName.set(x.name, series);
    }
  }
  return [...byName].map(([name, failedShare]) => ({ name, failedShare }));
}
