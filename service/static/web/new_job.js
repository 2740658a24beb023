// The new-job form: the book's preset on architecture change, JSON to POST /jobs, errors shown by field.
"use strict";
(function () {
  const form = document.getElementById("new-job");
  const presets = JSON.parse(document.getElementById("presets").textContent);
  const field = (name) => document.getElementById("f-" + name);

  function applyPreset() {
    const preset = presets[field("architecture").value];
    for (const [name, value] of Object.entries(preset)) {
      if (name === "description") document.getElementById("arch-description").textContent = value;
      else if (field(name)) field(name).value = value;
    }
  }

  // Fine-tuning: the fields of the chosen source (a job with an epoch, or a model with an alias or version) only.
  function initFrom() {
    const source = field("init_from.source").value;
    if (!source) return undefined;
    const names = source === "job" ? ["job", "epoch"] : ["model", "alias", "version"];
    const chosen = { freeze: field("init_from.freeze").checked };
    for (const name of names) {
      const element = field("init_from." + name);
      const text = element.value.trim();
      if (text === "") continue;
      const numeric = element.type === "number" || (name === "epoch" && /^[0-9]+$/.test(text));
      chosen[name] = numeric ? Number(text) : text;
    }
    return chosen;
  }

  function spec() {
    const body = { optimizer: {}, scheduler: {} };
    for (const element of form.elements) {
      if (!element.name || element.value === "" || element.name.startsWith("init_from.")) continue;
      const value = element.type === "number" ? Number(element.value) : element.value;
      const [head, tail] = element.name.split(".");
      if (tail) body[head][tail] = value; else body[head] = value;
    }
    const source = initFrom();
    if (source) body.init_from = source;
    return body;
  }

  function showSource() {
    const source = field("init_from.source").value;
    form.querySelectorAll("[data-source]").forEach((group) => {
      group.hidden = !source || !group.dataset.source.split(" ").includes(source);
    });
  }

  function clearErrors() {
    form.querySelectorAll(".field-error").forEach((p) => convlab.showError(p, ""));
    form.querySelectorAll("[aria-invalid]").forEach((e) => e.removeAttribute("aria-invalid"));
    convlab.showError(document.getElementById("form-error"), "");
  }

  // "init_from: init_from.model: ..." (admission wraps the source's own message): the innermost field with a slot.
  function narrow(name, message) {
    const at = message.indexOf(": ");
    const inner = at > 0 ? message.slice(0, at) : "";
    if (!inner.startsWith(name + ".") || !document.getElementById("e-" + inner)) return [name, message];
    return narrow(inner, message.slice(at + 2));
  }

  // The API names each bad field: structured `errors` (loc) for schema errors, "field: message" parts otherwise.
  function showErrors(data) {
    const problems = (data.errors || []).map((e) => [e.loc.filter((p) => p !== "body").join("."), e.msg]);
    if (!problems.length) {
      for (const part of String(data.detail || "").split("; ")) {
        const at = part.indexOf(": ");
        problems.push(at > 0 ? narrow(part.slice(0, at), part.slice(at + 2)) : ["", part]);
      }
    }
    const general = [];
    for (const [name, message] of problems) {
      const slot = document.getElementById("e-" + name);
      if (slot) {
        convlab.showError(slot, message);
        (field(name) || field(name + ".source")).setAttribute("aria-invalid", "true");
      } else general.push((name ? name + ": " : "") + message);
    }
    convlab.showError(document.getElementById("form-error"), general.join("; "));
    const first = form.querySelector("[aria-invalid]");
    if (first) first.focus();
  }

  field("architecture").addEventListener("change", applyPreset);
  field("init_from.source").addEventListener("change", showSource);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const answer = await convlab.api("POST", "/jobs", spec());
    if (answer.ok) window.location.assign("/ui/jobs/" + answer.data.id);
    else showErrors(answer.data || { detail: "HTTP " + answer.status });
  });
  applyPreset();
  // A dataset page's "Train on it" link names the dataset: choose it when the list has it.
  const wanted = new URLSearchParams(window.location.search).get("dataset");
  if (wanted && [...field("dataset").options].some((o) => o.value === wanted)) field("dataset").value = wanted;
})();
