// A small line chart of the latest values of a series.

import { s } from "./dom";

export function sparkline(values: number[], width = 240, height = 40, cls = ""): SVGSVGElement {
  // The chart stretches to its box: the points are scaled, not letterboxed.
  const svg = s("svg", { class: `spark ${cls}`, width, height, viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", "aria-hidden": "true" });
  if (values.length === 0) return svg;
  const max = Math.max(...values, 1e-9);
  const step = values.length > 1 ? width / (values.length - 1) : width;
  const pad = 3;
  const y = (v: number) => height - pad - (v / max) * (height - 2 * pad);
  const pts = values.map((v, i) => `${(i * step).toFixed(1)},${y(v).toFixed(1)}`);
  if (values.length === 1) pts.push(`${width},${y(values[0]).toFixed(1)}`);
  svg.append(
    s("polygon", { class: "spark-area", points: `0,${height} ${pts.join(" ")} ${width},${height}` }),
    s("polyline", { class: "spark-line", points: pts.join(" "), "vector-effect": "non-scaling-stroke" }),
  );
  return svg;
}
