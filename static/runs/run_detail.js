// Live run page: tail the log and follow progress by polling the JSON log endpoint (and, for
// a job run, its steps' states from the run endpoint); when the run reaches a final state,
// reload once to show the final node table and timeline. Each step's first log line gets an
// anchor (#log-step-N) the steps table links to.
(function () {
  const config = JSON.parse(document.getElementById("run-poll").textContent);
  const pre = document.getElementById("run-log");
  const status = document.querySelector("[data-testid=log-status]");
  let offset = 0;
  let wasFinal = config.final;
  let lastNodes = 0;
  let nodesReadAt = 0;
  const stepLines = new Map(Object.entries(config.step_lines).map(([line, index]) => [Number(line), index]));
  const stepsTable = document.querySelector("[data-testid=steps-table]");

  // Update each step's row from the run endpoint's `steps`, text only.
  async function refreshSteps() {
    const response = await fetch(config.run_url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    for (const step of (await response.json()).steps) {
      const row = stepsTable.querySelector("[data-step='" + step.index + "']");
      if (!row) continue;
      const badge = row.querySelector("[data-testid=step-state]");
      badge.className = "badge state-" + step.state;
      badge.textContent = step.state.charAt(0).toUpperCase() + step.state.slice(1);
      row.querySelector("[data-testid=step-exit-code]").textContent = step.exit_code == null ? "—" : step.exit_code;
      if (step.started_at && step.finished_at) {
        const seconds = (Date.parse(step.finished_at) - Date.parse(step.started_at)) / 1000;
        row.querySelector("[data-testid=step-duration]").textContent = seconds.toFixed(1) + " s";
      }
      if (step.log_first_line != null) {
        stepLines.set(step.log_first_line, step.index);
        row.querySelector("[data-testid=step-log-link]").hidden = false;
      }
    }
  }

  // Append log lines numbered from `first`, an anchor before each step's first line.
  function appendLines(first, lines) {
    let text = [];
    lines.forEach((line, i) => {
      const index = stepLines.get(first + i);
      if (index !== undefined && !document.getElementById("log-step-" + index)) {
        if (text.length) pre.append(document.createTextNode(text.join("\n") + "\n"));
        text = [];
        const anchor = document.createElement("span");
        anchor.id = "log-step-" + index;
        anchor.className = "log-step";
        pre.append(anchor);
      }
      text.push(line);
    });
    if (text.length) pre.append(document.createTextNode(text.join("\n") + "\n"));
  }

  function cell(row, text) {
    const td = row.insertCell();
    td.textContent = text == null ? "" : text;
    return td;
  }

  // Rebuild the node table from the API (failures first), text only: nothing is parsed as HTML.
  async function refreshNodes() {
    const response = await fetch(config.nodes_url, { headers: { Accept: "application/json" } });
    if (!response.ok) return;
    const nodes = await response.json();
    const body = document.querySelector("[data-testid=nodes-table] tbody");
    body.replaceChildren();
    for (const node of nodes) {
      const row = body.insertRow();
      if (["error", "fail", "runtime error"].includes(node.status)) row.className = "node-failed";
      const link = document.createElement("a");
      link.href = "/lineage/" + encodeURIComponent(config.project) + "/nodes/" + encodeURIComponent(node.unique_id) + "/";
      link.textContent = node.name || node.unique_id;
      cell(row, "").append(link);
      cell(row, node.resource_type);
      const badge = document.createElement("span");
      badge.className = "badge status-" + node.status.replace(/[^a-z]+/g, "-");
      badge.textContent = node.status;
      cell(row, "").append(badge);
      cell(row, node.execution_time == null ? "" : node.execution_time.toFixed(2) + " s");
      // A test's rows are its failing rows (dbt's failures), as the page renders them.
      const failing = node.failures == null ? "" : node.failures + " failing";
      cell(row, node.resource_type === "test" ? failing : node.rows_affected).dataset.testid = "rows";
      cell(row, node.message).className = "message";
      cell(row, "");
    }
    const count = document.querySelector("[data-testid=nodes-count]");
    if (count) count.textContent = nodes.length;
  }

  function atBottom() {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  }

  async function poll() {
    let data;
    try {
      if (stepsTable && !wasFinal) await refreshSteps();
      const response = await fetch(config.log_url + "?offset=" + offset, { headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(response.status);
      data = await response.json();
    } catch (err) {
      if (status) status.textContent = "connection lost, retrying…";
      setTimeout(poll, 3000);
      return;
    }
    if (data.lines.length) {
      const follow = atBottom();
      appendLines(offset, data.lines);
      if (follow) pre.scrollTop = pre.scrollHeight;
    }
    offset = data.next_offset;
    const badge = document.querySelector("[data-testid=run-state]");
    badge.className = "badge state-" + data.state;
    badge.textContent = data.state_label;
    document.querySelector("[data-testid=run-reason]").textContent = data.reason;
    document.querySelector("[data-testid=progress-text]").textContent =
      data.nodes_done + " of " + data.nodes_total + " done" + (data.nodes_failed ? ", " + data.nodes_failed + " failed" : "");
    // Re-read the nodes when the counts move, and (at most every 2 s) when the log grows:
    // a node that starts changes neither count.
    const counts = data.nodes_done + data.nodes_total;
    if (!data.final && (counts !== lastNodes || (data.lines.length && Date.now() - nodesReadAt > 2000))) {
      lastNodes = counts;
      nodesReadAt = Date.now();
      refreshNodes();
    }
    const bar = document.querySelector(".progress .bar");
    if (data.nodes_total) bar.style.width = Math.round((100 * data.nodes_done) / data.nodes_total) + "%";
    if (data.nodes_failed) bar.classList.add("has-failures");
    if (data.lines.length >= 2000) {
      poll();
    } else if (data.final && !wasFinal) {
      window.location.reload();
    } else if (!data.final) {
      setTimeout(poll, 700);
    } else if (status) {
      status.textContent = "";
    }
  }
  poll();
})();
