// Live run page: tail the log and follow progress by polling the JSON log endpoint; when
// the run reaches a final state, reload once to show the final node table and timeline.
(function () {
  const config = JSON.parse(document.getElementById("run-poll").textContent);
  const pre = document.getElementById("run-log");
  const status = document.querySelector("[data-testid=log-status]");
  let offset = 0;
  let wasFinal = config.final;

  function atBottom() {
    return pre.scrollHeight - pre.scrollTop - pre.clientHeight < 40;
  }

  async function poll() {
    let data;
    try {
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
      pre.append(document.createTextNode(data.lines.join("\n") + "\n"));
      if (follow) pre.scrollTop = pre.scrollHeight;
    }
    offset = data.next_offset;
    const badge = document.querySelector("[data-testid=run-state]");
    badge.className = "badge state-" + data.state;
    badge.textContent = data.state_label;
    document.querySelector("[data-testid=run-reason]").textContent = data.reason;
    document.querySelector("[data-testid=progress-text]").textContent = data.nodes_done + " of " + data.nodes_total + " done";
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
