// A model's page: the promote form moves an alias to a version through PUT /models/{name}/aliases/{alias}, then
// reads the page again, so the versions, aliases and their history are the server's.
"use strict";
(function () {
  const form = document.getElementById("promote");
  if (!form) return;
  const error = document.getElementById("promote-error");

  function message(answer) {
    const detail = answer.data && answer.data.detail;
    if (typeof detail === "string") return detail;
    return detail ? JSON.stringify(detail) : "HTTP " + answer.status;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const alias = document.getElementById("promote-alias").value.trim();
    const version = Number(document.getElementById("promote-version").value);
    if (!alias) return convlab.showError(error, "Name the alias to move (e.g. staging or prod).");
    const model = encodeURIComponent(form.dataset.model);
    const answer = await convlab.api("PUT", `/models/${model}/aliases/${encodeURIComponent(alias)}`, { version });
    if (!answer.ok) return convlab.showError(error, message(answer));
    convlab.showError(error, "");
    window.location.reload();
  });
})();
