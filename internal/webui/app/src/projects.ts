// Projects as the page shows them: one execd may serve several, each
// with its own runs and the caller's own role in it.

import { type Project, ProjectState } from "./api";
import { h } from "./dom";

/** runsHref is the runs list of project p, with more of the list's parameters. */
export function runsHref(p: string, params: Record<string, string> = {}): string {
  const q = new URLSearchParams();
  if (p) q.set("project", p);
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  const qs = q.toString();
  return qs ? `/?${qs}` : "/";
}

/** projectKey is a project state's CSS name: "serving", "broken". */
export function projectKey(st: ProjectState): string {
  return (ProjectState[st] ?? "UNSPECIFIED").toLowerCase();
}

/** brokenNotice says why project p is not served, or is null while it serves. */
export function brokenNotice(p: Project | undefined): HTMLElement | null {
  if (!p || p.state !== ProjectState.BROKEN) return null;
  return h("div", { class: "notice project-broken", role: "alert", "data-project": p.name },
    h("strong", null, `Project ${p.name} is not served. `),
    h("span", { class: "project-error" }, p.error || "execd could not load it."),
    h("span", { class: "muted" }, " Its runs can still be read; none can start until its folder or settings are fixed."));
}
