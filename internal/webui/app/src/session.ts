// What the pages share with the app around them: the caller's session and
// the shape of a page. The entry (main.ts) makes both; the pages only use
// them, so they import this file rather than the entry.

import type { GetCallerResponse, Project, Role } from "./api";

/** Session is what every page knows of the caller. */
export interface Session {
  caller: GetCallerResponse;
  /** projects: those the caller may view (ListProjects), in the server's order. */
  projects: Project[];
  /** project: the project the page shows, named in every call about it. */
  project: string;
  /** role is the caller's role in project p. */
  role(p: string): Role;
  /** canOperate: the role in p may start, cancel and repair its runs (the server checks too). */
  canOperate(p: string): boolean;
  /** show makes p the project the top bar and its links name. */
  show(p: string): void;
  /** open goes to href, a page of the app, without a reload. */
  open(href: string): void;
  /** failed hands an API error over: an expired or unknown token asks for a new one. */
  failed(err: unknown): void;
}

/** Page is what a page hands the app: its element, its title, and how to leave it. */
export interface Page {
  el: HTMLElement;
  title: string;
  close(): void;
}
