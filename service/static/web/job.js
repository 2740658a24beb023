// A job's page: curves from its history, kept growing by its event stream (Last-Event-ID on reconnect), the
// event log, checkpoints, cancel/delete and predictions.
"use strict";
(function () {
  const root = document.getElementById("job");
  const id = root.dataset.jobId;
  const FINAL = root.dataset.final.split(","); // the finished statuses, from the server's enum
  const epochs = new Map(); // epoch -> record; keyed, so a replayed event cannot double a point
  let lastEventId = Number(root.dataset.lastEventId);
  let refreshing = null;

  const stepChart = charts.line(document.getElementById("chart-steps"), "step", "loss", [{ label: "train loss" }]);
  const byEpoch = { wholeX: true }; // whole epochs on the x axis
  const lossChart = charts.line(document.getElementById("chart-epoch-loss"), "epoch", "loss", [
    { label: "train", points: true }, { label: "test", points: true }], byEpoch);
  const accChart = charts.line(document.getElementById("chart-epoch-acc"), "epoch", "accuracy", [
    { label: "train", points: true }, { label: "test", points: true }], byEpoch);

  function drawEpochs() {
    const rows = [...epochs.values()].sort((a, b) => a.epoch - b.epoch);
    const xs = rows.map((r) => r.epoch);
    lossChart.set([xs, rows.map((r) => r.train_loss), rows.map((r) => r.test_loss)]);
    accChart.set([xs, rows.map((r) => r.train_acc), rows.map((r) => r.test_acc)]);
  }

  async function loadHistory() {
    const answer = await convlab.api("GET", `/jobs/${id}/history?max_points=2000`);
    if (!answer.ok) return;
    const steps = answer.data.steps;
    stepChart.set([steps.map((p) => p.step), steps.map((p) => p.loss)]);
    answer.data.epochs.forEach((e) => epochs.set(e.epoch, e));
    drawEpochs();
  }

  // At most one history read in flight and one per second: progress events can come faster.
  function refreshSoon() {
    if (refreshing) return;
    refreshing = setTimeout(async () => { await loadHistory(); refreshing = null; }, 1000);
  }

  async function loadCheckpoints() {
    const answer = await convlab.api("GET", `/jobs/${id}/checkpoints`);
    if (!answer.ok) return;
    const body = document.querySelector("#checkpoints tbody");
    body.replaceChildren(...answer.data.map((c) => {
      const row = document.createElement("tr");
      const acc = c.metrics ? c.metrics.test_acc.toFixed(4) : "-";
      const cells = [c.epoch + (c.best ? " (best)" : ""), c.step, acc, c.sha256, c.size + " B"];
      cells.forEach((text, i) => {
        const cell = document.createElement("td");
        if (i === 3) { const code = document.createElement("code"); code.className = "sha"; code.textContent = text; cell.append(code); }
        else cell.textContent = text;
        row.append(cell);
      });
      const link = document.createElement("a");
      link.href = `/jobs/${id}/checkpoints/${c.epoch}`;
      link.textContent = "safetensors";
      link.setAttribute("download", "");
      const cell = document.createElement("td");
      cell.append(link);
      row.append(cell);
      return row;
    }));
  }

  const ended = (status) => FINAL.includes(status) || status === "deleted";

  function setStatus(status) {
    const badge = document.getElementById("status");
    badge.textContent = status;
    badge.className = "status " + status;
    root.dataset.status = status;
    const active = !FINAL.includes(status);
    document.getElementById("cancel-job").hidden = !active;
    document.getElementById("delete-job").hidden = active;
    if (ended(status)) document.getElementById("eta").textContent = "-"; // an ended job has no ETA
  }

  function logEvent(event, kind) {
    const eventId = Number(event.lastEventId);
    if (!eventId || eventId <= lastEventId) return; // already shown (a replay after a reconnect)
    lastEventId = eventId;
    const item = document.createElement("li");
    item.dataset.id = String(eventId);
    const code = document.createElement("code");
    code.textContent = kind;
    item.append(code, " " + new Date().toLocaleTimeString() + " " + event.data);
    document.getElementById("events").append(item);
  }

  function showProgress(p) {
    document.getElementById("epoch").textContent = p.epoch;
    document.getElementById("total-epochs").textContent = p.total_epochs || "?";
    document.getElementById("step").textContent = p.step;
    document.getElementById("total-steps").textContent = p.total_steps || "?";
    // A progress event that arrives after the final status (a replay) must not bring an ETA back.
    document.getElementById("eta").textContent = ended(root.dataset.status) ? "-" : convlab.seconds(p.eta_seconds);
    if (p.total_steps) document.getElementById("progress").value = p.step / p.total_steps;
  }

  function follow() {
    // The browser sends Last-Event-ID itself when it reconnects; `after` covers the events this page rendered.
    const source = new EventSource(`/jobs/${id}/events?after=${lastEventId}`);
    source.addEventListener("progress", (e) => { showProgress(JSON.parse(e.data)); refreshSoon(); });
    source.addEventListener("epoch", (e) => {
      logEvent(e, "epoch");
      const record = JSON.parse(e.data);
      epochs.set(record.epoch, record);
      drawEpochs();
      loadCheckpoints();
      refreshSoon();
    });
    source.addEventListener("status", (e) => {
      logEvent(e, "status");
      const data = JSON.parse(e.data);
      setStatus(data.status);
      if (FINAL.includes(data.status)) {
        source.close(); // the server ends the stream; without this the browser would reconnect forever
        if (data.status === "succeeded") document.getElementById("progress").value = 1;
        loadHistory();
        loadCheckpoints();
      }
    });
    source.addEventListener("deleted", () => { source.close(); setStatus("deleted"); });
    // the other kinds (the run's environment, a sweep's pruning decisions, dataset downloads) go to the log only
    for (const kind of ["environment", "prune", "download"]) source.addEventListener(kind, (e) => logEvent(e, kind));
  }

  async function act(method, url, then) {
    const answer = await convlab.api(method, url);
    const error = document.getElementById("action-error");
    convlab.showError(error, answer.ok ? "" : answer.data.detail);
    if (answer.ok) then(answer.data);
  }
  document.getElementById("cancel-job").addEventListener("click", () =>
    act("POST", `/jobs/${id}/cancel`, (job) => setStatus(job.status)));
  document.getElementById("delete-job").addEventListener("click", () => {
    if (window.confirm(`Delete job ${id} with its history and checkpoints?`)) act("DELETE", `/jobs/${id}`, () => window.location.assign("/"));
  });

  const form = document.getElementById("predict");
  const file = document.getElementById("predict-file");
  const zone = document.getElementById("dropzone");
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    file.files = e.dataTransfer.files;
    file.dispatchEvent(new Event("change"));
  });
  file.addEventListener("change", () => {
    const preview = document.getElementById("predict-preview");
    if (file.files.length) { preview.src = URL.createObjectURL(file.files[0]); preview.hidden = false; }
  });
  // A test image: fetched as a PNG and put in the file input, so it is sent exactly like an upload.
  document.getElementById("use-test-image").addEventListener("click", async () => {
    const index = Number(document.getElementById("test-index").value) || 0;
    const response = await fetch(`/ui/jobs/${id}/samples/${index}.png`, { credentials: "same-origin" });
    const error = document.getElementById("predict-error");
    if (!response.ok) return convlab.showError(error, (await response.json()).detail);
    convlab.showError(error, "");
    const chosen = new DataTransfer();
    chosen.items.add(new File([await response.blob()], `test-${index}.png`, { type: "image/png" }));
    file.files = chosen.files;
    file.dispatchEvent(new Event("change"));
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("predict-error");
    if (!file.files.length) return convlab.showError(error, "Choose an image first.");
    const data = new FormData();
    data.append("file", file.files[0]);
    const k = document.getElementById("predict-k").value || 3;
    const answer = await convlab.api("POST", `/jobs/${id}/predict?top_k=${encodeURIComponent(k)}`, data);
    convlab.showError(error, answer.ok ? "" : answer.data.detail);
    if (!answer.ok) return;
    const table = document.getElementById("predict-result");
    table.tBodies[0].replaceChildren(...answer.data.predictions[0].top_k.map((c) => {
      const row = table.tBodies[0].insertRow();
      row.insertCell().textContent = c.label;
      row.insertCell().textContent = (100 * c.probability).toFixed(1) + " %";
      return row;
    }));
    table.hidden = false;
    const overlay = document.getElementById("explain-overlay");
    overlay.hidden = true;
    if (!document.getElementById("predict-explain").checked) return;
    const method = encodeURIComponent(document.getElementById("explain-method").value);
    const picture = await convlab.api("POST", `/jobs/${id}/explain?format=png&method=${method}`, data);
    convlab.showError(error, picture.ok ? "" : picture.data.detail);
    if (!picture.ok) return;
    overlay.src = URL.createObjectURL(picture.data);
    overlay.hidden = false;
  });

  loadHistory();
  if (!FINAL.includes(root.dataset.status)) follow();
})();
