// The optimization lab: trajectories of the chosen optimizers on a preset or an expression, drawn over the
// function's contour (2-D, on a canvas) or its curve (1-D), with f(x) per step and the convexity verdict.
"use strict";
(function () {
  const form = document.getElementById("lab");
  const preset = document.getElementById("lab-preset");
  const expression = document.getElementById("lab-expression");
  const x0 = document.getElementById("lab-x0");
  const canvas = document.getElementById("lab-contour");
  const curve = document.getElementById("lab-curve");
  const error = document.getElementById("lab-error");
  let presets = {};
  let generation = 0; // answers to an older edit are dropped

  async function loadPresets() {
    const answer = await convlab.api("GET", "/functions");
    if (!answer.ok) return convlab.showError(error, answer.data.detail);
    for (const p of answer.data.functions) {
      presets[p.name] = p;
      const option = document.createElement("option");
      option.value = p.name;
      option.textContent = `${p.name}: ${p.expression}`;
      preset.append(option);
    }
  }

  function request() {
    const optimizers = [...form.querySelectorAll("input[name=optimizer]:checked")].map((box) => {
      const lr = Number(document.getElementById("lr-" + box.value).value);
      return lr > 0 ? { name: box.value, lr } : { name: box.value };
    });
    const start = x0.value.split(",").map((s) => s.trim()).filter((s) => s).map(Number);
    const body = { function: preset.value || expression.value, optimizers, steps: Number(document.getElementById("lab-steps").value) };
    if (start.length) body.x0 = start;
    return body;
  }

  // The box to draw: the preset's, else around every iterate with a margin.
  function boxOf(result) {
    if (preset.value && presets[preset.value]) return presets[preset.value].box;
    const box = [];
    for (let d = 0; d < result.dimension; d++) {
      const values = result.runs.flatMap((r) => r.points.map((p) => p.x[d])).filter(Number.isFinite);
      let lo = Math.min(...values), hi = Math.max(...values);
      const pad = Math.max((hi - lo) * 0.2, 1);
      box.push([lo - pad, hi + pad]);
    }
    return box;
  }

  function heat(t) { // t in [0, 1] -> a light-to-dark blue that keeps contour lines readable
    const c = [[247, 251, 255], [107, 174, 214], [8, 48, 107]];
    const k = t < 0.5 ? 0 : 1, u = t < 0.5 ? t * 2 : (t - 0.5) * 2;
    return c[k].map((v, i) => Math.round(v + (c[k + 1][i] - v) * u));
  }

  function drawContour(grid, box, runs) {
    const ctx = canvas.getContext("2d");
    const W = canvas.width, H = canvas.height, n1 = grid.x1.length, n2 = grid.x2.length;
    const finite = grid.f.flat().filter((v) => v !== null && Number.isFinite(v));
    const lo = Math.min(...finite), hi = Math.max(...finite);
    const scale = (v) => Math.log1p(v - lo) / Math.log1p(hi - lo || 1);
    const px = (x) => ((x - box[0][0]) / (box[0][1] - box[0][0])) * W;
    const py = (y) => H - ((y - box[1][0]) / (box[1][1] - box[1][0])) * H;
    const cw = W / (n1 - 1), ch = H / (n2 - 1);
    ctx.clearRect(0, 0, W, H);
    for (let j = 0; j < n2; j++) for (let i = 0; i < n1; i++) {
      const v = grid.f[j][i];
      ctx.fillStyle = v === null ? "#ddd" : `rgb(${heat(scale(v)).join(",")})`;
      ctx.fillRect(px(grid.x1[i]) - cw / 2, py(grid.x2[j]) - ch / 2, cw + 1, ch + 1);
    }
    ctx.strokeStyle = "rgba(0, 0, 0, 0.45)";
    ctx.lineWidth = 1;
    for (let level = 1; level < 12; level++) contourLines(ctx, grid, lo + (Math.expm1((level / 12) * Math.log1p(hi - lo))), px, py);
    runs.forEach((run, k) => {
      ctx.strokeStyle = ctx.fillStyle = charts.color(k);
      ctx.lineWidth = 2;
      ctx.beginPath();
      run.points.forEach((p, s) => (s ? ctx.lineTo : ctx.moveTo).call(ctx, px(p.x[0]), py(p.x[1])));
      ctx.stroke();
      run.points.forEach((p) => { ctx.beginPath(); ctx.arc(px(p.x[0]), py(p.x[1]), 3, 0, 2 * Math.PI); ctx.fill(); });
    });
    canvas.dataset.drawn = String(Number(canvas.dataset.drawn) + 1);
  }

  // Marching squares, one segment per crossed cell (enough for a picture).
  function contourLines(ctx, grid, level, px, py) {
    const f = grid.f, xs = grid.x1, ys = grid.x2;
    const cross = (a, b, va, vb) => a + ((level - va) / (vb - va)) * (b - a);
    ctx.beginPath();
    for (let j = 0; j + 1 < ys.length; j++) for (let i = 0; i + 1 < xs.length; i++) {
      const v = [f[j][i], f[j][i + 1], f[j + 1][i + 1], f[j + 1][i]];
      if (v.some((q) => q === null)) continue;
      const pts = [];
      if ((v[0] < level) !== (v[1] < level)) pts.push([cross(xs[i], xs[i + 1], v[0], v[1]), ys[j]]);
      if ((v[1] < level) !== (v[2] < level)) pts.push([xs[i + 1], cross(ys[j], ys[j + 1], v[1], v[2])]);
      if ((v[3] < level) !== (v[2] < level)) pts.push([cross(xs[i], xs[i + 1], v[3], v[2]), ys[j + 1]]);
      if ((v[0] < level) !== (v[3] < level)) pts.push([xs[i], cross(ys[j], ys[j + 1], v[0], v[3])]);
      for (let k = 0; k + 1 < pts.length; k += 2) {
        ctx.moveTo(px(pts[k][0]), py(pts[k][1]));
        ctx.lineTo(px(pts[k + 1][0]), py(pts[k + 1][1]));
      }
    }
    ctx.stroke();
  }

  let curveChart = null, valuesChart = null;
  function drawCurve(grid, runs) {
    curve.replaceChildren();
    const series = [{ label: "f", stroke: "#555" }].concat(runs.map((r, k) => ({ label: r.optimizer, stroke: charts.color(k), points: true, pointsOnly: true })));
    curveChart = charts.line(curve, "x", "f(x)", series);
    const tables = [[grid.x, grid.f]].concat(runs.map((r) => {
      const pts = r.points.slice().sort((a, b) => a.x[0] - b.x[0]);
      return [pts.map((p) => p.x[0]), pts.map((p) => p.f)];
    }));
    curveChart.set(uPlot.join(tables));
  }

  function drawValues(runs) {
    const element = document.getElementById("lab-values");
    element.replaceChildren();
    valuesChart = charts.line(element, "step", "f(x)", runs.map((r, k) => ({ label: r.optimizer, stroke: charts.color(k), points: true })));
    const steps = Math.max(...runs.map((r) => r.points.length));
    valuesChart.set([[...Array(steps).keys()]].concat(runs.map((r) => [...Array(steps).keys()].map((s) => (r.points[s] ? r.points[s].f : null)))));
  }

  function showLegendAndTable(runs) {
    const legend = document.getElementById("lab-legend");
    legend.replaceChildren(...runs.map((r, k) => {
      const item = document.createElement("li");
      item.style.color = charts.color(k);
      item.textContent = r.optimizer;
      return item;
    }));
    const body = document.querySelector("#lab-final tbody");
    body.replaceChildren(...runs.map((r) => {
      const last = r.points[r.points.length - 1];
      const row = document.createElement("tr");
      const note = r.diverged ? "diverged: " + r.diverged.reason : r.stopped ? "stopped: " + r.stopped.reason : "";
      [r.optimizer, r.points.length - 1, last.x.map((v) => (v === null ? "∞" : v.toPrecision(4))).join(", "),
        last.f === null ? "∞" : last.f.toPrecision(5), note].forEach((text) => { row.insertCell().textContent = text; });
      return row;
    }));
  }

  async function run() {
    const mine = ++generation;
    const body = request();
    if (!body.optimizers.length) return convlab.showError(error, "Choose at least one optimizer.");
    const answer = await convlab.api("POST", "/trajectories", body);
    if (mine !== generation) return;
    if (!answer.ok) return convlab.showError(error, answer.data.detail);
    const result = answer.data;
    if (result.dimension > 2) return convlab.showError(error, "The lab draws 1-D and 2-D functions; this one has " + result.dimension + " variables.");
    const box = boxOf(result);
    const [grid, verdict] = await Promise.all([
      convlab.api("POST", "/trajectories/grid", { function: body.function, box, resolution: 60 }),
      convlab.api("POST", "/analysis/convexity", { function: body.function, box }),
    ]);
    if (mine !== generation) return;
    if (!grid.ok) return convlab.showError(error, grid.data.detail);
    convlab.showError(error, "");
    const twoD = result.dimension === 2;
    canvas.hidden = !twoD;
    curve.hidden = twoD;
    document.getElementById("lab-plot-caption").textContent = twoD ? "Contour and trajectories" : "f and the iterates";
    if (twoD) drawContour(grid.data, box, result.runs); else drawCurve(grid.data, result.runs);
    drawValues(result.runs);
    showLegendAndTable(result.runs);
    const v = verdict.data;
    document.getElementById("lab-verdict").textContent = !verdict.ok ? verdict.data.detail
      : v.convex ? `Convex on the box shown (${v.method}).`
      : `Not convex on the box shown (${v.method})` + (v.min_hessian_eigenvalue ? `: the Hessian has eigenvalue ${v.min_hessian_eigenvalue.value.toPrecision(3)} at (${v.min_hessian_eigenvalue.at.map((a) => a.toPrecision(3)).join(", ")}).` : ".");
  }

  let timer = null;
  function soon() { clearTimeout(timer); timer = setTimeout(run, 250); }
  preset.addEventListener("change", () => {
    const p = presets[preset.value];
    if (p) { expression.value = p.expression; x0.value = p.x0.join(", "); document.getElementById("lab-note").textContent = p.note; }
    soon();
  });
  expression.addEventListener("input", () => { preset.value = ""; soon(); });
  form.addEventListener("input", (e) => { if (e.target !== expression && e.target !== preset) soon(); });
  form.addEventListener("submit", (e) => { e.preventDefault(); run(); });
  loadPresets().then(run);
})();
