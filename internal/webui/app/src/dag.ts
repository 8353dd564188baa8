// The run's DAG: laid out by dagre (left to right, in dependency ranks),
// drawn as SVG. The layout is made once per run; live updates only change
// each node's state class and its second line.

import { graphlib, layout } from "@dagrejs/dagre";
import { s } from "./dom";
import { label } from "./states";

const W = 184; // node box
const H = 50;
const NAME_CHARS = 22; // what fits in W at the name's font size

export interface NodeLook {
  state: string; // CSS key, e.g. "running"
  sub: string; // second line: state, duration, attempt
}

export class Dag {
  readonly el: SVGSVGElement;
  private boxes = new Map<string, SVGGElement>();
  private subs = new Map<string, SVGTextElement>();
  private edges: SVGPathElement[] = [];

  constructor(names: string[], deps: [string, string][], onSelect: (name: string) => void) {
    const g = new graphlib.Graph();
    g.setGraph({ rankdir: "LR", nodesep: 20, ranksep: 52, marginx: 16, marginy: 16 });
    g.setDefaultEdgeLabel(() => ({}));
    for (const n of names) g.setNode(n, { width: W, height: H });
    for (const [from, to] of deps) g.setEdge(from, to);
    layout(g);
    const { width = W, height = H } = g.graph();

    // Drawn at its natural size, and scaled down to fit a narrower box.
    this.el = s("svg", {
      class: "dag-svg", viewBox: `0 0 ${Math.ceil(width)} ${Math.ceil(height)}`, role: "img", "aria-label": "pipeline graph",
    });
    // Below 60% a large graph scrolls instead: its names stay readable.
    this.el.style.maxWidth = `${Math.ceil(width)}px`;
    this.el.style.minWidth = `${Math.ceil(width * 0.6)}px`;
    this.el.append(s("defs", null,
      s("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        s("path", { d: "M0,0 L10,5 L0,10 z", class: "arrow" }))));

    const edgeLayer = s("g", { class: "edges" });
    for (const e of g.edges()) {
      const pts = g.edge(e).points ?? [];
      const path = s("path", { class: "edge", d: curve(pts), "data-from": e.v, "data-to": e.w, "marker-end": "url(#arrow)" });
      this.edges.push(path);
      edgeLayer.append(path);
    }
    this.el.append(edgeLayer);

    for (const n of names) {
      const { x, y } = g.node(n);
      const sub = s("text", { class: "node-sub", x: 16, y: 38 }, "");
      const box = s("g", {
        class: "node", "data-node": n, "data-state": "pending", tabindex: 0, role: "button",
        transform: `translate(${x - W / 2},${y - H / 2})`,
      },
        s("title", null, n),
        s("rect", { class: "node-box", width: W, height: H, rx: 7 }),
        s("rect", { class: "node-bar", x: 0, y: 0, width: 6, height: H, rx: 3 }),
        s("text", { class: "node-name", x: 16, y: 21 }, n.length > NAME_CHARS ? n.slice(0, NAME_CHARS - 1) + "…" : n),
        sub,
      );
      const pick = () => onSelect(n);
      box.addEventListener("click", pick);
      box.addEventListener("keydown", (ev) => {
        if ((ev as KeyboardEvent).key === "Enter" || (ev as KeyboardEvent).key === " ") {
          ev.preventDefault();
          pick();
        }
      });
      this.boxes.set(n, box);
      this.subs.set(n, sub);
      this.el.append(box);
    }
  }

  update(name: string, look: NodeLook): void {
    const box = this.boxes.get(name);
    if (!box) return;
    if (box.dataset.state !== look.state) {
      box.dataset.state = look.state;
      box.setAttribute("class", `node st-${look.state}${box.classList.contains("selected") ? " selected" : ""}`);
      box.querySelector("title")!.textContent = `${name}: ${label(look.state)}`;
    }
    const sub = this.subs.get(name)!;
    if (sub.textContent !== look.sub) sub.textContent = look.sub;
  }

  select(name: string | undefined): void {
    for (const [n, box] of this.boxes) box.classList.toggle("selected", n === name);
    for (const e of this.edges) {
      e.classList.toggle("near", name !== undefined && (e.dataset.from === name || e.dataset.to === name));
    }
  }
}

/** curve draws dagre's edge points as a smooth path. */
function curve(pts: { x: number; y: number }[]): string {
  if (pts.length === 0) return "";
  let d = `M${pts[0].x},${pts[0].y}`;
  for (let i = 1; i < pts.length - 1; i++) {
    const mx = (pts[i].x + pts[i + 1].x) / 2;
    const my = (pts[i].y + pts[i + 1].y) / 2;
    d += ` Q${pts[i].x},${pts[i].y} ${mx},${my}`;
  }
  const last = pts[pts.length - 1];
  return d + ` L${last.x},${last.y}`;
}
