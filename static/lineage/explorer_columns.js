// The explorer's column mode (templates/lineage/explorer.html): pick a node and one of its
// columns; the server answers that column's upstream and downstream column graph
// (lineage/views.py explorer_columns), drawn by lineage.js's picture. The choice is kept in
// the URL as ?column=<unique_id>:<column>. Names reach the page only as textContent.
(function () {
  "use strict";

  function readColumn() {
    const value = new URLSearchParams(location.search).get("column") || "";
    const at = value.indexOf(":");
    return at > 0 ? { node: value.slice(0, at), column: value.slice(at + 1) } : null;
  }

  function writeColumn(node, column) {
    const params = new URLSearchParams(location.search);
    if (node && column) params.set("column", `${node}:${column}`); else params.delete("column");
    const query = params.toString().replace(/\+/g, "%20"); // `+` stays dbt's operator in ?select=
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
  }

  function start(root) {
    const form = root.querySelector("form");
    const nodeInput = form.elements.node;
    const columnSelect = form.elements.column;
    const errorBox = root.querySelector("[data-testid=explorer-columns-error]");
    const status = root.querySelector("[data-testid=explorer-columns-status]");
    const picture = root.querySelector(".explorer-columns-picture");
    let node = "";

    function showError(message) {
      errorBox.textContent = message;
      errorBox.hidden = !message;
    }

    async function ask(params) {
      if (root.dataset.snapshot) params.set("snapshot", root.dataset.snapshot);
      const response = await fetch(`${root.dataset.columnsUrl}?${params}`, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok) throw new Error(body.detail || response.statusText || String(response.status));
      return body;
    }

    async function loadColumns(wanted, chosen) {
      showError("");
      picture.replaceChildren();
      const answer = await ask(new URLSearchParams({ node: wanted }));
      node = answer.node;
      nodeInput.value = node;
      columnSelect.replaceChildren();
      const none = document.createElement("option");
      none.value = "";
      none.textContent = answer.columns.length ? "choose a column" : "no columns";
      columnSelect.appendChild(none);
      answer.columns.forEach((name) => {
        const option = document.createElement("option");
        option.value = name;
        option.textContent = name;
        columnSelect.appendChild(option);
      });
      columnSelect.disabled = !answer.columns.length;
      status.textContent = `${answer.columns.length} columns of ${node}` + (answer.note ? ` (${answer.note})` : "") + ".";
      if (chosen) {
        columnSelect.value = answer.columns.find((name) => name.toLowerCase() === chosen.toLowerCase()) || "";
        if (columnSelect.value) await showColumn();
      }
    }

    async function showColumn() {
      showError("");
      picture.replaceChildren();
      const column = columnSelect.value;
      writeColumn(node, column);
      if (!column) return;
      const answer = await ask(new URLSearchParams({ node, column }));
      const graph = answer.graph;
      window.lineagePicture(picture, graph);
      const unresolved = graph.nodes.filter((n) => n.status === "unresolved").length;
      status.textContent = `${graph.nodes.length - 1} columns upstream and downstream of ${column}` +
        (unresolved ? `; ${unresolved} not resolved (bordered)` : "") +
        (graph.truncated ? "; only the nearest are shown" : "") + ".";
      picture.dataset.ready = "1";
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      loadColumns(nodeInput.value.trim()).catch((err) => showError("Could not load its columns: " + err.message));
    });
    columnSelect.addEventListener("change", () => {
      showColumn().catch((err) => showError("Could not load the column's lineage: " + err.message));
    });
    const chosen = readColumn();
    if (chosen) {
      loadColumns(chosen.node, chosen.column).catch((err) => showError("Could not load its columns: " + err.message));
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".explorer-columns[data-columns-url]").forEach(start);
  });
})();
