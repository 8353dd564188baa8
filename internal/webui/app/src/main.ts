// The web view's entry: learn who the caller is (asking for a token when
// the server needs one) and which projects it may view, then route between
// a project's runs list and a run.

import "./style.css";
import { api, authProblem, type GetCallerResponse, message, type Project, ProjectState, Role, token } from "./api";
import { h, replace } from "./dom";
import { projectKey, runsHref } from "./projects";
import { runPage } from "./run";
import { runsPage } from "./runs";
import type { Page, Session } from "./session";

// The project last looked at, for a URL that names none.
const PROJECT_KEY = "tauro-exec.project";

const root = document.getElementById("app")!;
let page: Page | undefined;
let session: Session | undefined;

async function start(): Promise<void> {
  let caller: GetCallerResponse;
  try {
    caller = await api.getCaller({});
  } catch (err) {
    if (authProblem(err)) {
      const refused = token.get() !== "";
      token.clear();
      signIn(refused ? "That token is not accepted: it is unknown to this server or was revoked." : "");
    } else {
      replace(root, h("div", { class: "empty" }, h("h1", null, "execd cannot be reached"), h("p", null, message(err)),
        h("button", { class: "btn", onclick: () => void start() }, "Try again")));
    }
    return;
  }
  let projects: Project[];
  try {
    projects = (await api.listProjects({})).projects;
  } catch (err) {
    if (authProblem(err)) {
      token.clear();
      signIn("The server no longer accepts the token: sign in again.");
    } else {
      replace(root, h("div", { class: "empty" }, h("h1", null, "The projects cannot be listed"), h("p", null, message(err)),
        h("button", { class: "btn", onclick: () => void start() }, "Try again")));
    }
    return;
  }
  const role = (p: string): Role => {
    const listed = projects.find((x) => x.name === p)?.role;
    if (listed) return listed;
    return caller.projects.find((x) => x.project === p)?.role ?? caller.role;
  };
  session = {
    caller,
    projects,
    project: "",
    role,
    canOperate: (p) => role(p) >= Role.OPERATOR,
    show(p) {
      this.project = p;
      if (p && projects.some((x) => x.name === p)) localStorage.setItem(PROJECT_KEY, p);
      showProject(this);
    },
    open(href) {
      history.pushState(null, "", href);
      route();
    },
    failed(err) {
      if (authProblem(err) && session === this) {
        session = undefined;
        token.clear();
        page?.close();
        page = undefined;
        signIn("The server no longer accepts the token: sign in again.");
      }
    },
  };
  shell(session);
  route();
}

// The top bar: the project switcher (when the caller may view more than
// one project) and the caller with its role in the project shown.
function shell(s: Session): void {
  const switcher = h("select", { name: "project", "aria-label": "project", class: "project-switch", hidden: s.projects.length < 2 },
    ...s.projects.map((p) => h("option", { value: p.name, "data-state": projectKey(p.state) },
      p.state === ProjectState.BROKEN ? `${p.name} (broken)` : p.name)));
  switcher.addEventListener("change", () => {
    history.pushState(null, "", runsHref(switcher.value));
    route();
  });
  replace(root,
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: "/", "data-link": "" }, logo(), h("span", null, "tauro-exec")),
      switcher,
      h("nav", null, h("a", { href: "/", "data-link": "", class: "nav-runs" }, "Runs")),
      h("div", { class: "who" },
        ...(s.caller.authenticationRequired
          ? [h("span", { class: "who-name" }, s.caller.name), h("span", { class: "role" }),
            h("button", { class: "btn ghost", "data-action": "sign-out", onclick: signOut }, "Sign out")]
          : [h("span", { class: "who-open", title: "this execd has no authentication: whoever reaches it is an admin" }, "open server")]))),
    h("main", { id: "page" }));
}

/** showProject brings the top bar to s.project: the switcher, the links and the role there. */
function showProject(s: Session): void {
  const switcher = root.querySelector<HTMLSelectElement>("select.project-switch");
  if (switcher) {
    // A project named in the URL but not listed (not the caller's) is
    // shown as it is; its calls say why they fail.
    if (s.project && !s.projects.some((p) => p.name === s.project) && !switcher.querySelector(`option[value="${CSS.escape(s.project)}"]`)) {
      switcher.append(h("option", { value: s.project }, s.project));
    }
    switcher.value = s.project;
    switcher.dataset.state = switcher.selectedOptions[0]?.dataset.state ?? "";
  }
  for (const a of root.querySelectorAll<HTMLAnchorElement>(".topbar a.brand, .topbar a.nav-runs")) {
    a.href = runsHref(s.projects.length > 1 ? s.project : "");
  }
  const role = (Role[s.role(s.project)] ?? "none").toLowerCase().replace("unspecified", "none");
  const who = root.querySelector<HTMLElement>(".topbar .who");
  if (who) who.dataset.role = role;
  const badge = root.querySelector<HTMLElement>(".topbar .who .role");
  if (badge) {
    badge.className = `role role-${role}`;
    badge.textContent = role;
    badge.title = s.projects.length > 1 ? `your role in ${s.project}` : "your role";
  }
}

/**
 * listedProject is the project a runs list shows: the URL's, else the one
 * last looked at (if still listed), else the first serving one. With
 * several projects the URL is made to name it, so it can be shared.
 */
function listedProject(s: Session): string {
  const url = new URL(location.href);
  let p = url.searchParams.get("project") ?? "";
  if (!p) {
    const last = localStorage.getItem(PROJECT_KEY) ?? "";
    p = s.projects.find((x) => x.name === last)?.name
      ?? s.projects.find((x) => x.state !== ProjectState.BROKEN)?.name
      ?? s.projects[0]?.name ?? "";
    if (p && s.projects.length > 1) {
      url.searchParams.set("project", p);
      history.replaceState(null, "", url);
    }
  }
  return p;
}

function route(): void {
  if (!session) return;
  page?.close();
  const m = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
  // A run's page shows the run's project once the run is read.
  session.show(m ? new URLSearchParams(location.search).get("project") ?? session.project : listedProject(session));
  page = m ? runPage(decodeURIComponent(m[1]), session) : runsPage(session);
  document.title = page.title;
  replace(document.getElementById("page")!, page.el);
  window.scrollTo(0, 0);
}

function signIn(problem: string): void {
  page?.close();
  page = undefined;
  const input = h("input", { type: "password", name: "token", autocomplete: "off", spellcheck: "false", placeholder: "tauro_…", "aria-label": "token", required: true });
  const error = h("p", { class: "signin-error", role: "alert" }, problem);
  const form = h("form", { class: "signin card" },
    h("div", { class: "signin-brand" }, logo(), h("span", null, "tauro-exec")),
    h("h1", null, "This execd needs a token"),
    h("p", { class: "muted" }, "Paste the bearer token you were given (",
      h("code", null, "execd token --name NAME --role viewer"), "). It is kept in this tab only."),
    input, error,
    h("button", { class: "btn primary", type: "submit" }, "Sign in"));
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    token.set(input.value.trim());
    void start();
  });
  replace(root, h("div", { class: "signin-wrap" }, form));
  input.focus();
}

function signOut(): void {
  token.clear();
  session = undefined;
  signIn("");
}

function logo(): SVGSVGElement {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("class", "logo");
  svg.innerHTML = '<circle cx="5" cy="12" r="3"/><circle cx="19" cy="5" r="3"/><circle cx="19" cy="19" r="3"/><path d="M8 11 16 6M8 13l8 5" fill="none" stroke-width="2"/>';
  return svg;
}

// Links marked data-link change the page without a reload.
document.addEventListener("click", (ev) => {
  const a = (ev.target as Element).closest?.("a[data-link]") as HTMLAnchorElement | null;
  if (!a || ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  if (a.origin !== location.origin) return;
  ev.preventDefault();
  if (a.href !== location.href) history.pushState(null, "", a.href);
  route();
});
window.addEventListener("popstate", route);

void start();
