// Compare: each job's loss curve (raw faint, smoothed bold) and test accuracy, by step, epoch or elapsed time.
// The URL holds the state (jobs, x, smooth), so a comparison can be shared or reloaded.
"use strict";
(function () {
  const root = document.getElementById("compare");
  const form = document.getElementById("compare-form");
  const params = new URLSearchParams(window.location.search);
  const xAxis = document.getElementById("x-axis");
  const smoothing = document.getElementById("smoothing");
  xAxis.value = params.get("x") || "step";
  smoothing.value = params.get("smooth") || "0";
  document.getElementById("smoothing-value").textContent = smoothing.value;
  if (!root) return;
  const ids = root.dataset.jobs.split(",");
  let runs = [];
  let charts_ = null;

  // Position of each step point and epoch on the chosen axis. Elapsed time interpolates within each epoch.
  function positions(run, axis) {
    const perEpoch = run.job.total_steps && run.job.total_epochs ? run.job.total_steps / run.job.total_epochs : null;
    const starts = [0];
    run.epochs.forEach((e) => starts.push(starts[starts.length - 1] + e.seconds));
    const epochOf = (step) => (perEpoch ? step / perEpoch : null);
    const elapsedOf = (fraction) => {
      const whole = Math.floor(fraction);
      const seconds = run.epochs[Math.min(whole, run.epochs.length - 1)];
      return starts[Math.min(whole, starts.length - 1)] + (fraction - whole) * (seconds ? seconds.seconds : 0);
    };
    const stepX = run.steps.map((p) => axis === "step" ? p.step : axis === "epoch" ? epochOf(p.step) : elapsedOf(epochOf(p.step) || 0));
    const epochX = run.epochs.map((e) => axis === "step" ? (perEpoch ? e.epoch * perEpoch : e.epoch) : axis === "epoch" ? e.epoch : starts[e.epoch]);
    return { stepX, epochX };
  }

  function build(axis) {
    const label = axis === "elapsed" ? "elapsed (s)" : axis;
    const loss = document.getElementById("chart-compare-loss");
    const acc = document.getElementById("chart-compare-acc");
    loss.replaceChildren();
    acc.replaceChildren();
    const lossSeries = [];
    runs.forEach((r, i) => {
      lossSeries.push({ label: `#${r.id} raw`, stroke: charts.color(i, 0.25), width: 1 });
      lossSeries.push({ label: `#${r.id}`, stroke: charts.color(i), width: 2 });
    });
    const accSeries = runs.map((r, i) => ({ label: `#${r.id} test acc`, stroke: charts.color(i), points: true }));
    return { loss: charts.line(loss, label, "loss", lossSeries), acc: charts.line(acc, label, "accuracy", accSeries) };
  }

  function draw() {
    const axis = xAxis.value;
    const weight = Number(smoothing.value);
    charts_ = build(axis);
    const lossTables = [], accTables = [];
    runs.forEach((r) => {
      const { stepX, epochX } = positions(r, axis);
      const ys = r.steps.map((p) => p.loss);
      lossTables.push([stepX, ys], [stepX, charts.smooth(ys, weight)]);
      accTables.push([epochX, r.epochs.map((e) => e.test_acc)]);
    });
    charts_.loss.set(uPlot.join(lossTables));
    charts_.acc.set(uPlot.join(accTables));
  }

  function remember() {
    const query = new URLSearchParams({ jobs: ids.join(","), x: xAxis.value, smooth: smoothing.value });
    window.history.replaceState(null, "", "?" + query.toString());
  }

  async function load() {
    runs = await Promise.all(ids.map(async (id) => {
      const [job, history] = await Promise.all([
        convlab.api("GET", `/jobs/${id}`), convlab.api("GET", `/jobs/${id}/history?max_points=1000`)]);
      return { id, job: job.data, steps: history.data.steps, epochs: history.data.epochs };
    }));
    draw();
  }

  xAxis.addEventListener("change", () => { remember(); draw(); });
  smoothing.addEventListener("input", () => {
    document.getElementById("smoothing-value").textContent = smoothing.value;
    remember();
    draw();
  });
  form.addEventListener("submit", () => remember());
  load();
})();
