// Small SVG charts: a posterior per latent dimension, KL per dimension, |z| along a path.

const NS = "http://www.w3.org/2000/svg";

function svgEl(name, attrs, parent, title) {
  const node = document.createElementNS(NS, name);
  for (const [key, value] of Object.entries(attrs)) node.setAttribute(key, String(value));
  if (title) {
    const tip = document.createElementNS(NS, "title");
    tip.textContent = title;
    node.appendChild(tip);
  }
  if (parent) parent.appendChild(node);
  return node;
}

function reset(svg, width, height) {
  svg.replaceChildren();
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "xMinYMid meet");
}

const fmt = (v) => (Math.abs(v) >= 100 ? v.toFixed(0) : v.toFixed(2));

/** Bars get wider when there are few dimensions, so a 4-d model's chart is not a sliver. */
const barStep = (count) => Math.max(12, Math.min(36, 460 / Math.max(1, count)));

/**
 * The posterior q(z|x) = N(mu, sigma^2) per dimension, in `order`: a bar from 0 to mu and a
 * whisker over mu +- sigma, over the prior's +-1 band. A dimension whose posterior is the prior
 * (sigma near 1, mu near 0) carries nothing about this image and is drawn grey.
 */
export function posteriorChart(svg, mu, sigma, order, limit = 3) {
  const step = barStep(order.length);
  const left = 26;
  const width = left + step * order.length + 6;
  const height = 150;
  const top = 8;
  const plot = height - top - 18;
  const y = (v) => top + ((limit - Math.max(-limit, Math.min(limit, v))) / (2 * limit)) * plot;
  reset(svg, width, height);
  svg.dataset.dims = String(order.length);
  svgEl("rect", { x: left, y: y(1), width: width - left, height: y(-1) - y(1), class: "prior-band" }, svg,
    "the prior N(0, 1): mu = 0, sigma = 1");
  for (const v of [limit, 0, -limit]) {
    svgEl("line", { x1: left, x2: width, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }, svg);
    const label = svgEl("text", { x: left - 4, y: y(v) + 3, class: "tick", "text-anchor": "end" }, svg);
    label.textContent = v > 0 ? `+${v}` : String(v);
  }
  order.forEach((dim, i) => {
    const x = left + i * step + step / 2;
    const m = mu[dim];
    const s = sigma[dim];
    const idle = s > 0.85 && Math.abs(m) < 0.3;
    const tip = `z${dim}: mu ${fmt(m)}, sigma ${fmt(s)}${idle ? " (same as the prior: unused)" : ""}`;
    const group = svgEl("g", { class: idle ? "dim idle" : "dim" }, svg, tip);
    svgEl("rect", { x: x - step / 2, y: top, width: step, height: plot, class: "hit" }, group);
    const y0 = y(0);
    const ym = y(m);
    const bar = step * 0.56;
    svgEl("rect", { x: x - bar / 2, y: Math.min(y0, ym), width: bar, height: Math.max(1, Math.abs(ym - y0)), class: "mu" }, group);
    svgEl("line", { x1: x, x2: x, y1: y(m + s), y2: y(m - s), class: "sigma" }, group);
    svgEl("line", { x1: x - 3, x2: x + 3, y1: y(m + s), y2: y(m + s), class: "sigma" }, group);
    svgEl("line", { x1: x - 3, x2: x + 3, y1: y(m - s), y2: y(m - s), class: "sigma" }, group);
    if (order.length <= 40 || i % 2 === 0) {
      const label = svgEl("text", { x, y: height - 4, class: "tick", "text-anchor": "middle" }, group);
      label.textContent = String(dim);
    }
  });
}

/** KL(q(z_d|x) || p(z_d)) averaged over held-out images, per dimension, largest first. */
export function klChart(svg, kl, order) {
  const step = barStep(order.length);
  const left = 30;
  const width = left + step * order.length + 6;
  const height = 110;
  const top = 8;
  const plot = height - top - 18;
  const most = Math.max(...kl, 1e-6);
  reset(svg, width, height);
  for (const v of [most, most / 2, 0]) {
    const yv = top + plot - (v / most) * plot;
    svgEl("line", { x1: left, x2: width, y1: yv, y2: yv, class: v === 0 ? "axis" : "grid" }, svg);
    const label = svgEl("text", { x: left - 4, y: yv + 3, class: "tick", "text-anchor": "end" }, svg);
    label.textContent = fmt(v);
  }
  order.forEach((dim, i) => {
    const x = left + i * step + 2;
    const h = (kl[dim] / most) * plot;
    const idle = kl[dim] < 0.01;
    const group = svgEl("g", { class: idle ? "dim idle" : "dim" }, svg, `z${dim}: KL ${kl[dim].toFixed(3)} nats`);
    svgEl("rect", { x: x - 2, y: top, width: step, height: plot, class: "hit" }, group);
    svgEl("rect", { x, y: top + plot - h, width: step - 4, height: Math.max(1, h), class: "kl" }, group);
    const label = svgEl("text", { x: x + (step - 4) / 2, y: height - 4, class: "tick", "text-anchor": "middle" }, group);
    label.textContent = String(dim);
  });
}

/** The length |z| of each point along two paths (lerp and slerp), with the current step marked. */
export function normChart(svg, series, current) {
  const width = 260;
  const height = 96;
  const left = 30;
  const top = 10;
  const plot = height - top - 16;
  const all = series.flatMap((s) => s.values);
  const most = Math.max(...all, 1e-6) * 1.1;
  const count = series[0].values.length;
  const x = (i) => left + (i / Math.max(1, count - 1)) * (width - left - 8);
  const y = (v) => top + plot - (v / most) * plot;
  reset(svg, width, height);
  for (const v of [0, most / 2]) {
    svgEl("line", { x1: left, x2: width - 8, y1: y(v), y2: y(v), class: v === 0 ? "axis" : "grid" }, svg);
    const label = svgEl("text", { x: left - 4, y: y(v) + 3, class: "tick", "text-anchor": "end" }, svg);
    label.textContent = v.toFixed(1);
  }
  svgEl("line", { x1: x(current), x2: x(current), y1: top, y2: top + plot, class: "cursor" }, svg);
  for (const { name, values } of series) {
    const points = values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(" ");
    svgEl("polyline", { points, class: `line ${name}` }, svg, `|z| along the ${name} path`);
    svgEl("circle", { cx: x(current), cy: y(values[current]), r: 3, class: `dot ${name}` }, svg);
  }
  const label = svgEl("text", { x: width - 8, y: height - 2, class: "tick", "text-anchor": "end" }, svg);
  label.textContent = "step →";
}
