// convlab dashboard: shared helpers. The browser's session cookie authenticates calls to the JSON API; state
// changes echo the forgery-check cookie in a header (see service/api/cookies.py).
"use strict";
window.convlab = (function () {
  const body = document.body.dataset;

  function cookie(name) {
    const found = document.cookie.split("; ").find((c) => c.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : "";
  }

  // fetch() against this server; resolves to {ok, status, data}, where data is the parsed JSON (or null).
  async function api(method, url, payload, extraHeaders) {
    const headers = Object.assign({ Accept: "application/json" }, extraHeaders || {});
    const csrf = cookie(body.csrfCookie);
    if (csrf) headers[body.csrfHeader] = csrf;
    let requestBody;
    if (payload instanceof FormData) requestBody = payload;
    else if (payload !== undefined) {
      headers["Content-Type"] = "application/json";
      requestBody = JSON.stringify(payload);
    }
    const response = await fetch(url, { method, headers, body: requestBody, credentials: "same-origin" });
    if (response.ok && (response.headers.get("content-type") || "").startsWith("image/")) {
      return { ok: true, status: response.status, data: await response.blob() };  // e.g. an explain overlay
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = { detail: text }; }
    return { ok: response.ok, status: response.status, data };
  }

  function showError(element, message) {
    element.textContent = message || "";
    element.hidden = !message;
  }

  function seconds(value) {
    return value === null || value === undefined ? "-" : Math.round(value) + " s";
  }

  return { api, cookie, showError, seconds };
})();
