// States as the page shows them. Names come from the generated enums
// (NodeState.TIMED_OUT reads "timed_out" in CSS and "Timed out" on screen),
// so a state added to the proto shows up without a change here.

import { NodeState, RunState } from "./api";

/** key is a state's CSS name: "running", "timed_out". */
export function nodeKey(s: NodeState): string {
  return (NodeState[s] ?? "UNSPECIFIED").toLowerCase();
}

export function runKey(s: RunState): string {
  return (RunState[s] ?? "UNSPECIFIED").toLowerCase();
}

/** label reads a CSS name as words: "timed_out" -> "Timed out". */
export function label(key: string): string {
  const words = key.replaceAll("_", " ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

export const activeRun = (s: RunState): boolean =>
  s === RunState.PENDING || s === RunState.QUEUED || s === RunState.RUNNING;

/** repairable: RepairRun would run the nodes that did not succeed. */
export const repairableRun = (s: RunState): boolean =>
  s === RunState.FAILED || s === RunState.CANCELLED || s === RunState.INTERRUPTED;

export const activeNode = (s: NodeState): boolean =>
  s === NodeState.RUNNING || s === NodeState.RETRYING || s === NodeState.STREAMING;

export const endedNode = (s: NodeState): boolean =>
  s === NodeState.SUCCEEDED || s === NodeState.FAILED || s === NodeState.CANCELLED ||
  s === NodeState.SKIPPED || s === NodeState.TIMED_OUT;

/** The run states a filter offers, in the order a person scans them. */
export const runStates: RunState[] = [
  RunState.QUEUED, RunState.PENDING, RunState.RUNNING, RunState.SUCCEEDED,
  RunState.FAILED, RunState.CANCELLED, RunState.INTERRUPTED,
];

/** badge is a state's coloured label. */
export function badge(key: string, extra = ""): HTMLSpanElement {
  const el = document.createElement("span");
  el.className = `badge st-${key}${extra ? " " + extra : ""}`;
  el.dataset.state = key;
  el.textContent = label(key);
  return el;
}
