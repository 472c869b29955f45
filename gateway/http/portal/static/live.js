// fluxdepot portal: live flow statuses (Server-Sent Events), the report's print button, and the Search's
// "Data flow type" narrowing its flows at once (the server does it too, once the form is sent). Nothing
// else; every page works without this file.
"use strict";

function watchRow(row) {
  const cell = row.querySelector("[data-status]");
  if (!cell || !window.EventSource) {
    return;
  }
  const source = new EventSource(row.getAttribute("data-watch"));
  source.addEventListener("status", (message) => {
    const data = JSON.parse(message.data);
    cell.textContent = data.label;
    cell.className = "status s-" + data.status.toLowerCase();
    row.setAttribute("data-status-code", data.status);
    if (data.final) {
      row.setAttribute("data-final", "true");
      source.close();
    }
  });
  source.addEventListener("end", () => source.close());
}

function narrowFlows(typeSelect) {
  const flows = document.getElementById(typeSelect.getAttribute("data-narrows"));
  if (!flows) {
    return;
  }
  const apply = () => {
    flows.querySelectorAll("option[data-type]").forEach((option) => {
      const other = typeSelect.value !== "" && option.getAttribute("data-type") !== typeSelect.value;
      option.hidden = other;
      option.disabled = other;
      if (other && option.selected) {
        flows.value = "";
      }
    });
  };
  typeSelect.addEventListener("change", apply);
  apply();
}

document.addEventListener("DOMContentLoaded", () => {
  document.querySelectorAll("select[data-narrows]").forEach(narrowFlows);
  document.querySelectorAll("tr[data-watch]").forEach(watchRow);
  document.querySelectorAll("button[data-print]").forEach((button) => {
    button.hidden = false;
    button.addEventListener("click", () => window.print());
  });
});
