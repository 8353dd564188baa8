// The web view's entry: learn who the caller is (asking for a token when
// the server needs one), then route between the runs list and a run.

import "./style.css";
import { api, authProblem, type GetCallerResponse, message, Role, token } from "./api";
import { h, replace } from "./dom";
import { runPage } from "./run";
import { runsPage } from "./runs";

/** Session is what every page knows of the caller. */
export interface Session {
  caller: GetCallerResponse;
  /** canOperate: the role may cancel and repair runs (the server checks too). */
  canOperate: boolean;
  /** failed hands an API error over: an expired or unknown token asks for a new one. */
  failed(err: unknown): void;
}

export interface Page {
  el: HTMLElement;
  title: string;
  close(): void;
}

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
  session = {
    caller,
    canOperate: caller.role >= Role.OPERATOR,
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

function shell(s: Session): void {
  const role = (Role[s.caller.role] ?? "none").toLowerCase();
  replace(root,
    h("header", { class: "topbar" },
      h("a", { class: "brand", href: "/", "data-link": "" }, logo(), h("span", null, "tauro-exec")),
      h("nav", null, h("a", { href: "/", "data-link": "" }, "Runs")),
      h("div", { class: "who", "data-role": role },
        ...(s.caller.authenticationRequired
          ? [h("span", { class: "who-name" }, s.caller.name), h("span", { class: `role role-${role}` }, role),
            h("button", { class: "btn ghost", "data-action": "sign-out", onclick: signOut }, "Sign out")]
          : [h("span", { class: "who-open", title: "this execd has no authentication: whoever reaches it is an admin" }, "open server")]))),
    h("main", { id: "page" }));
}

function route(): void {
  if (!session) return;
  page?.close();
  const m = location.pathname.match(/^\/runs\/([^/]+)\/?$/);
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
