// crossent explore: plain JavaScript, no dependencies, no build step.
//
// The page keeps only what the person sets (probabilities, logits, sliders). Everything derived
// from those (losses, gradients, entropies, curves) comes from crossent through POST /api/<name>;
// each readout <output> carries the full-precision number in data-value, the text is rounded.

const SVG_NS = "http://www.w3.org/2000/svg"; // a namespace name, never fetched
const LOGIT_RANGE = 6; // drag range of a logit bar; typed logits may go to +-1000

// ───────────────────────────────────────────────────────────── numbers

/** JSON from the API with "Infinity", "-Infinity", "NaN" strings turned back into numbers. */
function decode(value) {
  if (value === "Infinity" || value === "-Infinity" || value === "NaN") return Number(value);
  if (Array.isArray(value)) return value.map(decode);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) out[k] = decode(v);
    return out;
  }
  return value;
}

function minus(text) {
  return text.replace(/-/g, "−");
}

/** A number for display: fixed digits, exponent for tiny or huge values, ∞ for infinity. */
function fmt(x, digits = 4) {
  if (x === null || x === undefined) return "—";
  if (Number.isNaN(x)) return "NaN";
  if (x === Infinity) return "∞";
  if (x === -Infinity) return "−∞";
  const a = Math.abs(x);
  if (a !== 0 && (a < 0.5 * 10 ** -digits || a >= 1e6)) return minus(x.toExponential(2));
  if (a < 0.5 * 10 ** -digits) return (0).toFixed(digits);
  return minus(x.toFixed(digits));
}

/** Write a number into <output id>: rounded text, exact value in data-value. */
function show(id, value, digits = 4, suffix = "") {
  const el = document.getElementById(id);
  el.textContent = fmt(value, digits) + suffix;
  el.dataset.value = String(value);
}

const clamp = (x, lo, hi) => Math.min(hi, Math.max(lo, x));
const round = (x, step) => Math.round(x / step) * step;

// ───────────────────────────────────────────────────────────── API

async function api(name, body) {
  const response = await fetch(`/api/${name}`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  let data;
  try {
    data = await response.json();
  } catch {
    data = { error: `HTTP ${response.status}` };
  }
  if (!response.ok) throw new Error(data.error || `HTTP ${response.status}`);
  return decode(data);
}

/**
 * One panel's link to its endpoint. request() sends the current state; while a request is in
 * flight further calls only mark it dirty, and the latest state is sent when it returns, so a
 * fast drag never queues up stale requests. The panel's data-state says "loading" or "ready"
 * and data-revision counts the answers drawn (the browser test waits on these).
 */
class Live {
  constructor(panelId, endpoint, body, render) {
    this.panel = document.getElementById(panelId);
    this.errorBox = this.panel.querySelector(".error");
    this.endpoint = endpoint;
    this.body = body;
    this.render = render;
    this.busy = false;
    this.dirty = false;
    this.revision = 0;
    this.last = null;
  }

  request() {
    if (this.busy) {
      this.dirty = true;
      return;
    }
    this.busy = true;
    this.dirty = false;
    this.panel.dataset.state = "loading";
    const sent = this.body();
    api(this.endpoint, sent)
      .then((data) => {
        this.last = data;
        this.render(data);
        this.errorBox.hidden = true;
        this.revision += 1;
        this.panel.dataset.revision = String(this.revision);
        this.panel.dataset.failed = "false";
      })
      .catch((error) => {
        this.errorBox.textContent = `The server refused this: ${error.message}`;
        this.errorBox.hidden = false;
        this.panel.dataset.failed = "true";
      })
      .finally(() => {
        this.busy = false;
        if (this.dirty) this.request();
        else this.panel.dataset.state = "ready";
      });
  }
}

// ───────────────────────────────────────────────────────────── SVG helpers

function svg(tag, attrs = {}, parent = null, text = null) {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  if (text !== null) el.textContent = text;
  if (parent) parent.appendChild(el);
  return el;
}

function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
}

/** The pointer position of a mouse/touch event in the SVG's own (viewBox) coordinates. */
function pointIn(root, event) {
  const pt = root.createSVGPoint();
  pt.x = event.clientX;
  pt.y = event.clientY;
  return pt.matrixTransform(root.getScreenCTM().inverse());
}

/** Columns of equal width between left and right. */
function columns(n, left, right) {
  const w = (right - left) / n;
  return {
    n,
    w,
    x: (i) => left + i * w,
    c: (i) => left + (i + 0.5) * w,
    index: (x) => clamp(Math.floor((x - left) / w), 0, n - 1),
    inside: (x) => x >= left && x <= right,
  };
}

/** An SVG path through (xs[i], ys[i]), values clipped to [lo, hi] of the y scale. */
function pathOf(xs, ys, sx, sy, lo, hi) {
  let d = "";
  let pen = false;
  for (let i = 0; i < xs.length; i += 1) {
    const y = ys[i];
    if (!Number.isFinite(y)) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${sx(xs[i]).toFixed(2)},${sy(clamp(y, lo, hi)).toFixed(2)}`;
    pen = true;
  }
  return d;
}

/** Horizontal gridlines with labels on the left. */
function yAxis(g, ticks, sy, left, right, digits = 2) {
  for (const t of ticks) {
    svg("line", { class: t === 0 ? "axis" : "gridline", x1: left, x2: right, y1: sy(t), y2: sy(t) }, g);
    svg("text", { x: left - 6, y: sy(t) + 4, "text-anchor": "end" }, g, fmt(t, digits).replace(/\.?0+$/, "") || "0");
  }
}

function xAxis(g, ticks, sx, y, label, right) {
  svg("line", { class: "axis", x1: sx(ticks[0]), x2: sx(ticks[ticks.length - 1]), y1: y, y2: y }, g);
  for (const t of ticks) {
    svg("line", { class: "axis", x1: sx(t), x2: sx(t), y1: y, y2: y + 4 }, g);
    svg("text", { x: sx(t), y: y + 16, "text-anchor": "middle" }, g, String(t));
  }
  if (label) svg("text", { x: right, y: y + 32, "text-anchor": "end" }, g, label);
}

function legend(g, items, x, y) {
  items.forEach(([cls, label], i) => {
    const yy = y + i * 17;
    svg("line", { class: `curve ${cls}`, x1: x, x2: x + 22, y1: yy, y2: yy }, g);
    svg("text", { x: x + 28, y: yy + 4 }, g, label);
  });
}

/**
 * Vertical dragging on a column chart, plus clicks on the class names.
 * opts.accept(pt) -> whether a press at pt starts a drag; opts.onValue(i, pt) while dragging;
 * opts.labelTop: presses below this y choose the true class (opts.onLabel(i));
 * opts.step(i, direction) for the arrow keys and opts.cols() the current geometry.
 */
function dragColumns(root, opts) {
  let dragging = null;
  let focus = 0;
  root.addEventListener("pointerdown", (event) => {
    const pt = pointIn(root, event);
    const cols = opts.cols();
    if (!cols.inside(pt.x)) return;
    const i = cols.index(pt.x);
    focus = i;
    if (opts.labelTop !== undefined && pt.y > opts.labelTop) {
      opts.onLabel(i);
      return;
    }
    if (!opts.accept(pt)) return;
    event.preventDefault();
    dragging = i;
    root.setPointerCapture(event.pointerId);
    opts.onValue(i, pt);
  });
  root.addEventListener("pointermove", (event) => {
    if (dragging === null) return;
    opts.onValue(dragging, pointIn(root, event));
  });
  const stop = () => {
    dragging = null;
  };
  root.addEventListener("pointerup", stop);
  root.addEventListener("pointercancel", stop);
  root.addEventListener("keydown", (event) => {
    const n = opts.cols().n;
    const keys = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: 1, ArrowDown: -1 };
    if (event.key === "ArrowLeft" || event.key === "ArrowRight") {
      focus = clamp(focus + keys[event.key], 0, n - 1);
      opts.step(focus, 0);
    } else if (event.key === "ArrowUp" || event.key === "ArrowDown") {
      opts.step(clamp(focus, 0, n - 1), keys[event.key]);
    } else if (event.key === "Enter" || event.key === " ") {
      opts.onLabel(clamp(focus, 0, n - 1));
    } else {
      return;
    }
    event.preventDefault();
  });
}

/** Class names under a column chart; the true one green with a check mark. */
function classLabels(g, cols, target, y) {
  for (let i = 0; i < cols.n; i += 1) {
    const t = svg(
      "text",
      { x: cols.c(i), y, "text-anchor": "middle", class: `classname${i === target ? " true" : ""}` },
      g,
      i === target ? `✓ ${i}` : String(i),
    );
    svg("title", {}, t, i === target ? "the true class" : "click to make this the true class");
  }
}

/** A K stepper and a true-class select, built into a .controls element. */
function classControls(container, prefix, state, onChange, { kMin = 2, kMax = 10, reset } = {}) {
  container.innerHTML = `
    <span class="stepper" aria-label="Number of classes">
      <span class="label">classes K</span>
      <button type="button" id="${prefix}-k-minus" aria-label="fewer classes">−</button>
      <output id="${prefix}-k"></output>
      <button type="button" id="${prefix}-k-plus" aria-label="more classes">+</button>
    </span>
    <label class="select">true class <select id="${prefix}-target"></select></label>
    <button type="button" id="${prefix}-reset">Reset</button>`;
  const kOut = container.querySelector(`#${prefix}-k`);
  const select = container.querySelector(`#${prefix}-target`);
  const sync = () => {
    kOut.textContent = String(state.logits.length);
    if (select.options.length !== state.logits.length) {
      select.innerHTML = state.logits.map((_, i) => `<option value="${i}">${i}</option>`).join("");
    }
    select.value = String(state.target);
  };
  const resize = (k) => {
    k = clamp(k, kMin, kMax);
    while (state.logits.length < k) state.logits.push(0);
    state.logits.length = k;
    state.target = Math.min(state.target, k - 1);
    sync();
    onChange();
  };
  container.querySelector(`#${prefix}-k-minus`).addEventListener("click", () => resize(state.logits.length - 1));
  container.querySelector(`#${prefix}-k-plus`).addEventListener("click", () => resize(state.logits.length + 1));
  select.addEventListener("change", () => {
    state.target = Number(select.value);
    onChange();
  });
  container.querySelector(`#${prefix}-reset`).addEventListener("click", () => {
    reset();
    sync();
    onChange();
  });
  sync();
  return sync;
}

/** Logit bars around a zero line: the true class green, a marker where a bar leaves the range. */
function logitBars(g, cols, logits, target, zeroY, scale, { values = true, grip = true } = {}) {
  for (let i = 0; i < cols.n; i += 1) {
    const z = logits[i];
    const shown = clamp(z, -LOGIT_RANGE, LOGIT_RANGE);
    const top = Math.min(zeroY, zeroY - shown * scale);
    const h = Math.max(Math.abs(shown * scale), 1);
    const cls = i === target ? "true" : "other";
    svg("rect", { class: `bar logit ${cls}`, x: cols.x(i) + cols.w * 0.22, y: top, width: cols.w * 0.56, height: h, rx: 3 }, g);
    const endY = zeroY - shown * scale;
    if (grip) svg("rect", { class: "handle", x: cols.c(i) - 9, y: endY - 3, width: 18, height: 6, rx: 3 }, g);
    if (values) {
      const above = z >= 0;
      const label = Math.abs(z) > LOGIT_RANGE ? `${fmt(z, 2)} ${z > 0 ? "↑" : "↓"}` : fmt(z, 2);
      svg("text", { class: "value", x: cols.c(i), y: above ? endY - 8 : endY + 16, "text-anchor": "middle" }, g, label);
    }
  }
  svg("line", { class: "zero", x1: cols.x(0), x2: cols.x(cols.n), y1: zeroY, y2: zeroY }, g);
}

/** Gradient bars around zero: a negative gradient (push the logit up) green, positive red. */
function gradBars(g, cols, grad, zeroY, scale, { values = true, idPrefix = null } = {}) {
  for (let i = 0; i < cols.n; i += 1) {
    const v = clamp(grad[i], -1, 1);
    const y = zeroY - v * scale;
    svg("rect", {
      class: `grad ${grad[i] <= 0 ? "up" : "down"}`,
      x: cols.x(i) + cols.w * 0.22,
      y: Math.min(zeroY, y),
      width: cols.w * 0.56,
      height: Math.max(Math.abs(v * scale), 1),
      rx: 3,
    }, g);
    if (values) {
      const t = svg("text", { class: "value", x: cols.c(i), y: v >= 0 ? y - 6 : y + 14, "text-anchor": "middle" }, g, fmt(grad[i], 3));
      if (idPrefix) {
        t.id = `${idPrefix}-${i}`;
        t.dataset.value = String(grad[i]);
      }
    }
  }
  svg("line", { class: "zero", x1: cols.x(0), x2: cols.x(cols.n), y1: zeroY, y2: zeroY }, g);
}

function probBars(g, cols, probs, target, baseY, height, { values = true, cls = "bar", idPrefix = null } = {}) {
  for (let i = 0; i < cols.n; i += 1) {
    const h = Math.max(probs[i] * height, 0.5);
    svg("rect", {
      class: `${cls} ${i === target ? "true" : "other"}`,
      x: cols.x(i) + cols.w * 0.22,
      y: baseY - h,
      width: cols.w * 0.56,
      height: h,
      rx: 3,
    }, g);
    if (values) {
      const t = svg("text", { class: "value", x: cols.c(i), y: baseY - h - 6, "text-anchor": "middle" }, g, fmt(probs[i], 3));
      if (idPrefix) {
        t.id = `${idPrefix}-${i}`;
        t.dataset.value = String(probs[i]);
      }
    }
  }
  svg("line", { class: "axis", x1: cols.x(0), x2: cols.x(cols.n), y1: baseY, y2: baseY }, g);
}

function sliderValue(id, digits, onInput) {
  const input = document.getElementById(id);
  const out = document.getElementById(`${id}-value`);
  const update = () => {
    out.textContent = Number(input.value).toFixed(digits);
  };
  input.addEventListener("input", () => {
    update();
    onInput(Number(input.value));
  });
  update();
  return { input, set: (v) => { input.value = String(v); update(); } };
}

// ───────────────────────────────────────────────────────────── 1. the quiz

function quizPanel() {
  const state = { probs: [0.1, 0.7, 0.1, 0.05, 0.05], target: 1 };
  const bars = document.getElementById("quiz-bars");
  const curve = document.getElementById("quiz-curve");
  const B = { left: 44, right: 552, top: 24, base: 222, labelTop: 228 };
  const H = B.base - B.top;
  const geometry = () => columns(state.probs.length, B.left, B.right);

  const live = new Live("quiz", "quiz", () => ({ probs: state.probs, target: state.target }), (data) => {
    bars.dataset.probs = JSON.stringify(data.probs); // the distribution this answer is for
    bars.dataset.target = String(data.target);
    show("quiz-ce", data.cross_entropy);
    show("quiz-ce-bits", data.cross_entropy_bits);
    show("quiz-entropy", data.entropy);
    show("quiz-kl", data.kl_divergence);
    show("quiz-mse", data.mse);
    show("quiz-uniform-loss", data.uniform_loss);
    document.getElementById("quiz-k2").textContent = String(data.num_classes);
    drawCurve(data);
  });

  function drawBars() {
    clear(bars);
    const cols = geometry();
    const g = svg("g", {}, bars);
    yAxis(g, [0, 0.25, 0.5, 0.75, 1], (p) => B.base - p * H, B.left, B.right);
    for (let i = 0; i < cols.n; i += 1) {
      const p = state.probs[i];
      const cls = i === state.target ? "true" : "other";
      const h = Math.max(p * H, 0.5);
      svg("rect", { class: `bar ${cls}`, x: cols.x(i) + cols.w * 0.16, y: B.base - h, width: cols.w * 0.68, height: h, rx: 4 }, g);
      svg("rect", { class: "handle", x: cols.c(i) - 10, y: B.base - h - 3, width: 20, height: 6, rx: 3 }, g);
      svg("text", { class: "value", x: cols.c(i), y: B.base - h - 9, "text-anchor": "middle" }, g, fmt(p, 3));
    }
    classLabels(g, cols, state.target, B.base + 22);
    svg("text", { x: B.left, y: 12 }, g, "predicted p (drag the bars)");
    svg("text", { x: B.right, y: B.base + 42, "text-anchor": "end" }, g, "class (click a name: that is the true answer)");
  }

  function drawCurve(data) {
    clear(curve);
    const C = { left: 44, right: 552, top: 24, bottom: 180, ymax: 5 };
    const sx = (q) => C.left + q * (C.right - C.left);
    const sy = (v) => C.bottom - (v / C.ymax) * (C.bottom - C.top);
    const g = svg("g", {}, curve);
    yAxis(g, [0, 1, 2, 3, 4, 5], sy, C.left, C.right, 0);
    xAxis(g, [0, 0.25, 0.5, 0.75, 1], sx, C.bottom, "confidence in the true class p_t", C.right);
    svg("text", { x: C.left - 40, y: 10 }, g, "nats");
    const u = data.uniform_loss;
    svg("line", { class: "uniform-line", x1: C.left, x2: C.right, y1: sy(u), y2: sy(u) }, g);
    svg("text", { class: "uniform-label", x: C.right, y: sy(u) - 5, "text-anchor": "end" }, g, `shrug: log ${data.num_classes} = ${fmt(u, 3)}`);
    svg("path", { class: "curve mse", d: pathOf(data.curve.confidence, data.curve.mse, sx, sy, 0, C.ymax) }, g);
    svg("path", { class: "curve ce", d: pathOf(data.curve.confidence, data.curve.cross_entropy, sx, sy, 0, C.ymax) }, g);
    svg("circle", { class: "dot mse", cx: sx(1 / data.num_classes), cy: sy(u), r: 4 }, g);
    const pt = data.probs[data.target];
    const ce = data.cross_entropy;
    svg("line", { class: "guide", x1: sx(pt), x2: sx(pt), y1: C.bottom, y2: sy(Math.min(ce, C.ymax)) }, g);
    svg("circle", { class: "dot ce", cx: sx(pt), cy: sy(Math.min(ce, C.ymax)), r: 6.5 }, g);
    svg("text", { class: "value", x: sx(pt) + (pt > 0.8 ? -10 : 10), y: sy(Math.min(ce, C.ymax)) + (ce > C.ymax ? 14 : -8), "text-anchor": pt > 0.8 ? "end" : "start" }, g,
      ce > C.ymax ? `you: ${fmt(ce, 2)} ↑` : `you: ${fmt(ce, 3)}`);
    legend(g, [["ce", "cross-entropy −log p_t"], ["mse", "MSE, rest spread evenly"]], C.right - 190, C.top + 8);
  }

  function setProb(i, v) {
    const k = state.probs.length;
    v = clamp(round(v, 0.001), 0, 1);
    const old = state.probs[i];
    const rest = 1 - old;
    for (let j = 0; j < k; j += 1) {
      if (j === i) continue;
      state.probs[j] = rest > 1e-9 ? (state.probs[j] * (1 - v)) / rest : (1 - v) / (k - 1);
    }
    state.probs[i] = v;
    changed();
  }

  function preset(kind) {
    const k = state.probs.length;
    const t = state.target;
    if (kind === "uniform") state.probs = Array(k).fill(1 / k);
    if (kind === "right") state.probs = state.probs.map((_, i) => (i === t ? 0.99 : 0.01 / (k - 1)));
    if (kind === "wrong") {
      const w = (t + 1) % k;
      state.probs = state.probs.map((_, i) => (i === t ? 0.01 : i === w ? 0.99 : 0));
    }
    changed();
  }

  function setK(k) {
    k = clamp(k, 2, 10);
    state.probs = Array(k).fill(1 / k);
    state.target = Math.min(state.target, k - 1);
    document.getElementById("quiz-k").textContent = String(k);
    changed();
  }

  function changed() {
    drawBars();
    live.request();
  }

  dragColumns(bars, {
    cols: geometry,
    labelTop: B.labelTop,
    accept: (pt) => pt.y >= B.top - 12,
    onValue: (i, pt) => setProb(i, (B.base - pt.y) / H),
    onLabel: (i) => {
      state.target = i;
      changed();
    },
    step: (i, dir) => (dir ? setProb(i, state.probs[i] + 0.01 * dir) : null),
  });
  document.getElementById("quiz-k-minus").addEventListener("click", () => setK(state.probs.length - 1));
  document.getElementById("quiz-k-plus").addEventListener("click", () => setK(state.probs.length + 1));
  document.getElementById("quiz-uniform").addEventListener("click", () => preset("uniform"));
  document.getElementById("quiz-right").addEventListener("click", () => preset("right"));
  document.getElementById("quiz-wrong").addEventListener("click", () => preset("wrong"));
  changed();
}

// ───────────────────────────────────────────────────────────── 2. binary

function binaryPanel() {
  const state = { p: 0.7, y: 1 };
  const plot = document.getElementById("binary-plot");
  const P = { left: 44, right: 552, top: 24, bottom: 250, ymax: 5 };
  const sx = (p) => P.left + p * (P.right - P.left);
  const sy = (v) => P.bottom - (v / P.ymax) * (P.bottom - P.top);

  const live = new Live("binary", "binary", () => ({ p: state.p, y: state.y }), (data) => {
    show("binary-loss", data.loss);
    show("binary-loss-bits", data.loss_bits);
    show("binary-mse", data.mse);
    show("binary-grad", data.grad_logit);
    show("binary-mse-grad", data.mse_grad_logit);
    draw(data);
  });

  function draw(data) {
    clear(plot);
    const g = svg("g", {}, plot);
    yAxis(g, [0, 1, 2, 3, 4, 5], sy, P.left, P.right, 0);
    xAxis(g, [0, 0.25, 0.5, 0.75, 1], sx, P.bottom, "predicted p = P(y = 1)", P.right);
    svg("text", { x: P.left - 40, y: 10 }, g, "nats");
    const c = data.curve;
    const y1 = data.y >= 0.5;
    const fade = (active) => (active ? "" : " faded");
    svg("path", { class: `curve y1 dashed${fade(y1)}`, d: pathOf(c.p, c.mse_y1, sx, sy, 0, P.ymax) }, g);
    svg("path", { class: `curve y0 dashed${fade(!y1)}`, d: pathOf(c.p, c.mse_y0, sx, sy, 0, P.ymax) }, g);
    svg("path", { class: `curve y1${fade(y1)}`, d: pathOf(c.p, c.loss_y1, sx, sy, 0, P.ymax) }, g);
    svg("path", { class: `curve y0${fade(!y1)}`, d: pathOf(c.p, c.loss_y0, sx, sy, 0, P.ymax) }, g);
    const x = sx(data.p);
    const ly = sy(Math.min(data.loss, P.ymax));
    svg("line", { class: "guide", x1: x, x2: x, y1: P.bottom, y2: P.top }, g);
    svg("circle", { class: `dot ${y1 ? "y1" : "y0"}`, cx: x, cy: ly, r: 6.5 }, g);
    svg("circle", { class: "dot mse", cx: x, cy: sy(Math.min(data.mse, P.ymax)), r: 5 }, g);
    const right = data.p > 0.7;
    svg("text", { class: "value", x: x + (right ? -10 : 10), y: ly - 8, "text-anchor": right ? "end" : "start" }, g,
      `L = ${fmt(data.loss, 3)}${data.loss > P.ymax ? " ↑" : ""}`);
    legend(g, [["y1", "−log p  (y = 1)"], ["y0", "−log(1 − p)  (y = 0)"], ["y1 dashed", "(1 − p)²"], ["y0 dashed", "p²"]],
      sx(0.36), P.top + 8);
  }

  const slider = sliderValue("binary-p", 3, (v) => {
    state.p = v;
    live.request();
  });
  const labelButtons = { 1: document.getElementById("binary-y1"), 0: document.getElementById("binary-y0") };
  for (const [y, button] of Object.entries(labelButtons)) {
    button.addEventListener("click", () => {
      state.y = Number(y);
      labelButtons[1].setAttribute("aria-pressed", String(state.y === 1));
      labelButtons[0].setAttribute("aria-pressed", String(state.y === 0));
      live.request();
    });
  }
  let dragging = false;
  const fromPointer = (event) => {
    const pt = pointIn(plot, event);
    state.p = clamp(round((pt.x - P.left) / (P.right - P.left), 0.001), 0, 1);
    slider.set(state.p);
    live.request();
  };
  plot.addEventListener("pointerdown", (event) => {
    dragging = true;
    plot.setPointerCapture(event.pointerId);
    fromPointer(event);
  });
  plot.addEventListener("pointermove", (event) => dragging && fromPointer(event));
  plot.addEventListener("pointerup", () => {
    dragging = false;
  });
  plot.classList.replace("draggable", "draggable-x");
  live.request();
}

// ───────────────────────────────────────────────────────────── 3. logits → softmax → gradient

function logitsPanel() {
  const initial = () => ({ logits: [2.0, 1.2, 0.3, -0.8, -2.0], target: 0 });
  const state = initial();
  const plot = document.getElementById("logits-plot");
  const inputs = document.getElementById("logits-inputs");
  const L = { left: 48, right: 552, zTop: 26, zZero: 104, zScale: 72 / LOGIT_RANGE, zBottom: 186,
    pBase: 318, pHeight: 100, gZero: 392, gScale: 48, labelTop: 440, labelY: 458 };
  const geometry = () => columns(state.logits.length, L.left, L.right);
  let data = null;

  const live = new Live("logits", "softmax_ce", () => ({ logits: state.logits, target: state.target }), (d) => {
    data = d;
    plot.dataset.logits = JSON.stringify(d.logits); // the logits this answer is for
    plot.dataset.target = String(d.target);
    show("logits-loss", d.loss);
    show("logits-loss-bits", d.loss_bits);
    show("logits-grad-norm", d.grad_norm);
    show("logits-grad-sum", d.grad_sum, 4);
    if (Math.abs(d.grad_sum) < 1e-12) {
      document.getElementById("logits-grad-sum").textContent = `≈ 0 (${fmt(d.grad_sum, 4)})`;
    }
    show("logits-entropy", d.entropy);
    show("logits-mse", d.mse);
    draw();
  });

  function draw() {
    clear(plot);
    const cols = geometry();
    const g = svg("g", {}, plot);
    svg("text", { class: "title", x: 4, y: 14 }, g, "logits z");
    svg("text", { x: 60, y: 14 }, g, "drag a bar up or down");
    logitBars(g, cols, state.logits, state.target, L.zZero, L.zScale);
    const fresh = data && data.probs.length === cols.n;
    svg("text", { class: "title", x: 4, y: L.pBase - L.pHeight - 14 }, g, "p = softmax(z)");
    svg("text", { class: "title", x: 4, y: L.gZero - L.gScale - 12 }, g, "∂L/∂z = p − y");
    if (fresh) {
      probBars(g, cols, data.probs, state.target, L.pBase, L.pHeight, { idPrefix: "logits-p" });
      gradBars(g, cols, data.grad, L.gZero, L.gScale, { idPrefix: "logits-grad" });
      const t = state.target;
      svg("text", { class: "value true", x: cols.c(t), y: L.gZero + L.gScale + 2, "text-anchor": "middle" }, g, "▲ push up");
    }
    classLabels(g, cols, state.target, L.labelY);
    syncInputs();
  }

  function syncInputs() {
    const k = state.logits.length;
    inputs.style.setProperty("--cols", String(k));
    if (inputs.children.length !== k) {
      clear(inputs);
      for (let i = 0; i < k; i += 1) {
        const input = document.createElement("input");
        input.type = "number";
        input.step = "0.1";
        input.min = "-1000";
        input.max = "1000";
        input.id = `logits-z-${i}`;
        input.setAttribute("aria-label", `logit of class ${i}`);
        input.addEventListener("input", () => {
          const v = Number(input.value);
          if (input.value !== "" && Number.isFinite(v)) {
            state.logits[i] = clamp(v, -1000, 1000);
            draw();
            live.request();
          }
        });
        inputs.appendChild(input);
      }
    }
    state.logits.forEach((z, i) => {
      const input = inputs.children[i];
      input.classList.toggle("true", i === state.target);
      if (document.activeElement !== input) input.value = String(Number(z.toFixed(4)));
    });
  }

  const changed = () => {
    draw();
    live.request();
  };
  const sync = classControls(document.getElementById("logits-controls"), "logits", state, changed, {
    reset: () => Object.assign(state, initial()),
  });
  dragColumns(plot, {
    cols: geometry,
    labelTop: L.labelTop,
    accept: (pt) => pt.y >= L.zTop - 10 && pt.y <= L.zBottom,
    onValue: (i, pt) => {
      state.logits[i] = clamp(round((L.zZero - pt.y) / L.zScale, 0.01), -LOGIT_RANGE, LOGIT_RANGE);
      changed();
    },
    onLabel: (i) => {
      state.target = i;
      sync();
      changed();
    },
    step: (i, dir) => {
      if (!dir) return;
      state.logits[i] = clamp(round(state.logits[i] + 0.1 * dir, 0.01), -1000, 1000);
      changed();
    },
  });
  changed();
}

// ───────────────────────────────────────────────────────────── 4. double softmax

function doublePanel() {
  const initial = () => ({ logits: [2.0, 1.0, 0.1], target: 0 });
  const state = initial();
  const top = document.getElementById("double-logits");
  const D = { left: 48, right: 552, zZero: 82, zScale: 56 / LOGIT_RANGE, labelTop: 146, labelY: 164 };
  const geometry = () => columns(state.logits.length, D.left, D.right);
  let data = null;

  const live = new Live("double", "double_softmax", () => ({ logits: state.logits, target: state.target }), (d) => {
    data = d;
    show("double-right-loss", d.right.loss);
    show("double-right-norm", d.right.grad_norm);
    show("double-wrong-loss", d.wrong.loss);
    show("double-wrong-norm", d.wrong.grad_norm);
    const ratio = document.getElementById("double-ratio");
    ratio.textContent = d.ratio === null ? "—" : `${(100 * d.ratio).toFixed(1)}%`;
    ratio.dataset.value = String(d.ratio);
    document.getElementById("double-ratio-text").textContent = d.ratio === null
      ? "The right gradient is zero here: nothing to compare."
      : `The buggy path's gradient is ${(100 * d.ratio).toFixed(1)}% the size of the right one, `
        + "and its loss can never approach 0: softmax of numbers in [0, 1] is never confident.";
    const list = document.getElementById("double-diagnosis");
    clear(list);
    for (const finding of d.diagnosis) {
      const li = document.createElement("li");
      const code = document.createElement("code");
      code.textContent = finding.code;
      li.append("crossent.diagnose: ", code, ` ${finding.message}`);
      list.appendChild(li);
    }
    draw();
  });

  // Both paths share one scale per row (set by the right path), so the squashing shows.
  function pathPlot(root, inputs, probs, grad, target, inputLabel, probLabel, scales) {
    clear(root);
    const cols = columns(inputs.length, 16, 262);
    const g = svg("g", {}, root);
    svg("text", { class: "title", x: 4, y: 12 }, g, inputLabel);
    logitBars(g, cols, inputs, target, 62, scales.z, { grip: false });
    svg("text", { class: "title", x: 4, y: 110 }, g, probLabel);
    probBars(g, cols, probs, target, 186, 56);
    svg("text", { class: "title", x: 4, y: 206 }, g, "∂L/∂z");
    gradBars(g, cols, grad, 240, scales.grad, { values: true });
  }

  function draw() {
    clear(top);
    const cols = geometry();
    const g = svg("g", {}, top);
    svg("text", { class: "title", x: 4, y: 14 }, g, "logits z");
    svg("text", { x: 62, y: 14 }, g, "drag; both paths see the same z");
    logitBars(g, cols, state.logits, state.target, D.zZero, D.zScale);
    classLabels(g, cols, state.target, D.labelY);
    if (data && data.logits.length === cols.n) {
      const zMax = Math.max(1, ...data.logits.map((v) => Math.abs(clamp(v, -LOGIT_RANGE, LOGIT_RANGE))));
      const gMax = Math.max(1e-6, ...data.right.grad.map(Math.abs), ...data.wrong.grad.map(Math.abs));
      const scales = { z: 32 / zMax, grad: 20 / gMax };
      pathPlot(document.getElementById("double-right-plot"), data.logits, data.probs, data.right.grad,
        data.target, "input: z", "softmax(z)", scales);
      pathPlot(document.getElementById("double-wrong-plot"), data.wrong.inputs, data.wrong.probs,
        data.wrong.grad, data.target, "input: softmax(z), squashed", "softmax(softmax(z))", scales);
    }
  }

  const changed = () => {
    draw();
    live.request();
  };
  const sync = classControls(document.getElementById("double-controls"), "double", state, changed, {
    reset: () => Object.assign(state, initial()),
  });
  dragColumns(top, {
    cols: geometry,
    labelTop: D.labelTop,
    accept: (pt) => pt.y <= D.labelTop,
    onValue: (i, pt) => {
      state.logits[i] = clamp(round((D.zZero - pt.y) / D.zScale, 0.01), -LOGIT_RANGE, LOGIT_RANGE);
      changed();
    },
    onLabel: (i) => {
      state.target = i;
      sync();
      changed();
    },
    step: (i, dir) => {
      if (!dir) return;
      state.logits[i] = clamp(round(state.logits[i] + 0.1 * dir, 0.01), -LOGIT_RANGE, LOGIT_RANGE);
      changed();
    },
  });
  changed();
}

// ───────────────────────────────────────────────────────────── 5. smoothing, temperature, focal

function smoothingPanel() {
  const initial = () => ({ logits: [2.0, 1.2, 0.3, -0.8, -2.0], target: 0 });
  const state = { ...initial(), eps: 0.1, temperature: 1, gamma: 2, convention: "uniform" };
  const dist = document.getElementById("smoothing-dist");
  const curve = document.getElementById("smoothing-curve");
  const S = { left: 10, right: 296, zZero: 66, zScale: 44 / LOGIT_RANGE, zBottom: 112, base: 232, height: 92, labelTop: 238, labelY: 256 };
  const geometry = () => columns(state.logits.length, S.left, S.right);
  let data = null;

  const body = () => ({
    logits: state.logits,
    target: state.target,
    label_smoothing: state.eps,
    temperature: state.temperature,
    gamma: state.gamma,
    convention: state.convention,
  });
  const live = new Live("smoothing", "smoothing", body, (d) => {
    data = d;
    show("smoothing-ce", d.cross_entropy.loss);
    show("smoothing-smoothed", d.smoothed.loss);
    show("smoothing-focal", d.focal.loss);
    show("smoothing-pt", d.probs[d.target]);
    show("smoothing-qt", d.target_distribution[d.target]);
    const grads = document.getElementById("smoothing-grads");
    const t = d.target;
    grads.textContent = [d.cross_entropy.grad[t], d.smoothed.grad[t], d.focal.grad[t]].map((v) => fmt(v, 3)).join(", ");
    grads.dataset.value = JSON.stringify([d.cross_entropy.grad[t], d.smoothed.grad[t], d.focal.grad[t]]);
    draw();
  });

  function draw() {
    clear(dist);
    const cols = geometry();
    const g = svg("g", {}, dist);
    svg("text", { class: "title", x: 4, y: 12 }, g, "logits z (drag)");
    logitBars(g, cols, state.logits, state.target, S.zZero, S.zScale, { values: false });
    svg("text", { class: "title", x: 4, y: S.base - S.height - 14 }, g, "target q (dashed) vs p = softmax(z/T)");
    if (data && data.probs.length === cols.n) {
      for (let i = 0; i < cols.n; i += 1) {
        const cls = i === state.target ? "true" : "other";
        const ph = Math.max(data.probs[i] * S.height, 0.5);
        const qh = Math.max(data.target_distribution[i] * S.height, 0.5);
        svg("rect", { class: `bar ${cls}`, x: cols.x(i) + cols.w * 0.16, y: S.base - ph, width: cols.w * 0.34, height: ph, rx: 2 }, g);
        svg("rect", { class: `bar target ${cls}`, x: cols.x(i) + cols.w * 0.52, y: S.base - qh, width: cols.w * 0.34, height: qh, rx: 2 }, g);
      }
      svg("line", { class: "axis", x1: S.left, x2: S.right, y1: S.base, y2: S.base }, g);
      drawCurve();
    }
    classLabels(g, cols, state.target, S.labelY);
  }

  function drawCurve() {
    clear(curve);
    const C = { left: 30, right: 292, top: 10, bottom: 214, ymax: 4 };
    const sx = (q) => C.left + q * (C.right - C.left);
    const sy = (v) => C.bottom - (v / C.ymax) * (C.bottom - C.top);
    const g = svg("g", {}, curve);
    yAxis(g, [0, 1, 2, 3, 4], sy, C.left, C.right, 0);
    xAxis(g, [0, 0.5, 1], sx, C.bottom, "p_t", C.right);
    const c = data.curve;
    for (const name of ["cross_entropy", "smoothed", "focal"]) {
      const cls = name === "cross_entropy" ? "ce" : name;
      svg("path", { class: `curve ${cls}`, d: pathOf(c.confidence, c[name], sx, sy, 0, C.ymax) }, g);
    }
    const qt = data.target_distribution[data.target];
    svg("line", { class: "guide", x1: sx(qt), x2: sx(qt), y1: C.bottom, y2: C.top }, g);
    svg("text", { x: sx(qt), y: C.top - 2, "text-anchor": "middle" }, g, "q_t");
    const pt = data.probs[data.target];
    for (const name of ["cross_entropy", "smoothed", "focal"]) {
      const cls = name === "cross_entropy" ? "ce" : name;
      svg("circle", { class: `dot ${cls}`, cx: sx(pt), cy: sy(Math.min(data[name].loss, C.ymax)), r: 5 }, g);
    }
    legend(g, [["ce", "cross-entropy"], ["smoothed", `smoothed, ε = ${fmt(data.label_smoothing, 2)}`], ["focal", `focal, γ = ${fmt(data.gamma, 1)}`]], sx(0.3), C.top + 6);
  }

  const changed = () => {
    draw();
    live.request();
  };
  const sync = classControls(document.getElementById("smoothing-controls"), "smoothing", state, changed, {
    reset: () => Object.assign(state, initial()),
  });
  sliderValue("smoothing-eps", 2, (v) => {
    state.eps = v;
    live.request();
  });
  sliderValue("smoothing-temp", 2, (v) => {
    state.temperature = v;
    live.request();
  });
  sliderValue("smoothing-gamma", 1, (v) => {
    state.gamma = v;
    live.request();
  });
  const conventions = { uniform: document.getElementById("smoothing-uniform"), others: document.getElementById("smoothing-others") };
  for (const [name, button] of Object.entries(conventions)) {
    button.addEventListener("click", () => {
      state.convention = name;
      for (const [other, b] of Object.entries(conventions)) b.setAttribute("aria-pressed", String(other === name));
      document.getElementById("smoothing-q-formula").innerHTML = name === "uniform"
        ? "<i>q</i> = (1 − ε) <i>y</i> + ε/<i>K</i>"
        : "<i>q</i> = (1 − ε) <i>y</i> + ε/(<i>K</i> − 1) (1 − <i>y</i>)";
      live.request();
    });
  }
  dragColumns(dist, {
    cols: geometry,
    labelTop: S.labelTop,
    accept: (pt) => pt.y <= S.zBottom,
    onValue: (i, pt) => {
      state.logits[i] = clamp(round((S.zZero - pt.y) / S.zScale, 0.01), -LOGIT_RANGE, LOGIT_RANGE);
      changed();
    },
    onLabel: (i) => {
      state.target = i;
      sync();
      changed();
    },
    step: (i, dir) => {
      if (!dir) return;
      state.logits[i] = clamp(round(state.logits[i] + 0.1 * dir, 0.01), -LOGIT_RANGE, LOGIT_RANGE);
      changed();
    },
  });
  changed();
}

// ───────────────────────────────────────────────────────────── 6. pipeline

function pipelinePanel() {
  const initialWeights = () => ({
    W: [[0.5, -0.3], [0.2, 0.8], [-0.4, 0.1]],
    b: [0.0, 0.0, 0.0],
  });
  const state = { x: [1.0, -0.5], ...initialWeights(), target: 0, lr: 0.5, history: [], stepping: false };

  function table(rows, { target = -1, signs = false, cls = "vector" } = {}) {
    const t = document.createElement("table");
    t.className = cls;
    rows.forEach((row, r) => {
      const tr = document.createElement("tr");
      if (r === target) tr.className = "true";
      for (const v of Array.isArray(row) ? row : [row]) {
        const td = document.createElement("td");
        td.textContent = fmt(v, 3);
        td.dataset.value = String(v);
        if (signs && v !== 0) td.className = v < 0 ? "neg" : "pos";
        tr.appendChild(td);
      }
      t.appendChild(tr);
    });
    return t;
  }

  function put(id, node) {
    const el = document.getElementById(id);
    clear(el);
    el.appendChild(node);
  }

  const live = new Live("pipeline", "pipeline", () => ({ x: state.x, W: state.W, b: state.b, target: state.target, lr: state.lr }), (d) => {
    put("pipe-x", table(d.x));
    put("pipe-W", table(d.W.map((row, i) => [...row, d.b[i]]), { target: d.target, cls: "matrix" }));
    put("pipe-logits", table(d.logits, { target: d.target }));
    put("pipe-probs", table(d.probs, { target: d.target }));
    show("pipe-loss", d.loss);
    put("pipe-onehot", table(d.onehot, { target: d.target }));
    put("pipe-grad-z", table(d.grad_logits, { target: d.target, signs: true }));
    put("pipe-grad-W", table(d.grad_W, { target: d.target, signs: true, cls: "matrix" }));
    put("pipe-W-new", table(d.W_new.map((row, i) => [...row, d.b_new[i]]), { target: d.target, cls: "matrix" }));
    show("pipe-loss-new", d.loss_new);
    if (state.history.length === 0 || state.stepping) state.history.push(d.loss);
    state.stepping = false;
    drawHistory();
  });

  function drawHistory() {
    const root = document.getElementById("pipe-history");
    clear(root);
    const h = state.history.slice(-30);
    const ymax = Math.max(...h, 1e-9);
    const sx = (i) => 8 + (h.length > 1 ? (i / (h.length - 1)) * 184 : 92);
    const sy = (v) => 70 - (v / ymax) * 58;
    svg("path", { class: "curve", d: pathOf(h.map((_, i) => i), h, sx, sy, 0, ymax) }, root);
    h.forEach((v, i) => svg("circle", { class: "dot", cx: sx(i), cy: sy(v), r: 2.5 }, root));
    svg("text", { x: 196, y: 10, "text-anchor": "end" }, root, `${state.history.length - 1} steps`);
  }

  const restart = () => {
    state.history = [];
    live.request();
  };
  const x0 = sliderValue("pipe-x0", 2, (v) => {
    state.x[0] = v;
    restart();
  });
  const x1 = sliderValue("pipe-x1", 2, (v) => {
    state.x[1] = v;
    restart();
  });
  sliderValue("pipe-lr", 2, (v) => {
    state.lr = v;
    live.request();
  });
  const target = document.getElementById("pipe-target");
  target.addEventListener("change", () => {
    state.target = Number(target.value);
    restart();
  });
  document.getElementById("pipe-step").addEventListener("click", () => {
    const d = live.last;
    if (live.busy || !d) return;
    state.W = d.W_new;
    state.b = d.b_new;
    state.stepping = true;
    live.request();
  });
  document.getElementById("pipe-reset").addEventListener("click", () => {
    Object.assign(state, initialWeights(), { x: [1.0, -0.5] });
    x0.set(1.0);
    x1.set(-0.5);
    restart();
  });
  live.request();
}

// ───────────────────────────────────────────────────────────── start

async function start() {
  quizPanel();
  binaryPanel();
  logitsPanel();
  doublePanel();
  smoothingPanel();
  pipelinePanel();
  try {
    const health = await (await fetch("/api/health")).json();
    document.getElementById("version").textContent = health.version;
  } catch {
    document.getElementById("version").textContent = "(server unreachable)";
  }
  document.body.dataset.started = "true";
}

start();
