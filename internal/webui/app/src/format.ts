// How times, durations and numbers read on the page.

import type { Run } from "./api";

/** Timestamp is google.protobuf.Timestamp as the generated code reads it. */
export type Timestamp = NonNullable<Run["createTime"]>;

export function date(ts: Timestamp | undefined): Date | undefined {
  return ts ? new Date(Number(ts.seconds) * 1000 + Math.round(ts.nanos / 1e6)) : undefined;
}

/** duration reads milliseconds as "850ms", "12.3s", "4m 05s", "2h 03m". */
export function duration(ms: number | undefined): string {
  if (ms === undefined || !Number.isFinite(ms) || ms < 0) return "";
  if (ms < 1000) return `${Math.round(ms)}ms`;
  const s = ms / 1000;
  if (s < 60) return `${s.toFixed(s < 10 ? 1 : 0)}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${String(Math.floor(s % 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h ${String(m % 60).padStart(2, "0")}m`;
}

/** span is the time from start to end, or to now while it runs. */
export function span(start: Date | undefined, end: Date | undefined, now = Date.now()): number | undefined {
  if (!start) return undefined;
  return (end ? end.getTime() : now) - start.getTime();
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
const dayFmt = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric" });

/** when reads a time as "14:03:27", with the day when it is not today. */
export function when(d: Date | undefined): string {
  if (!d) return "";
  const today = new Date();
  const sameDay = d.toDateString() === today.toDateString();
  return sameDay ? timeFmt.format(d) : `${dayFmt.format(d)} ${timeFmt.format(d)}`;
}

export function iso(d: Date | undefined): string {
  return d ? d.toISOString() : "";
}

const numFmt = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export function num(v: number | bigint): string {
  return typeof v === "bigint" ? v.toLocaleString() : numFmt.format(v);
}

/** rate reads a rows-per-second figure compactly: 950/s, 12.4k/s. */
export function rate(v: number): string {
  if (v >= 1e6) return `${(v / 1e6).toFixed(1)}M/s`;
  if (v >= 1e3) return `${(v / 1e3).toFixed(1)}k/s`;
  return `${v.toFixed(v < 10 ? 1 : 0)}/s`;
}
