// The whole project as one graph (templates/lineage/explorer.html): sigma.js draws every node
// of the snapshot on WebGL at the positions the server laid out (lineage/explorer.py); the
// selector box asks the select API (the one selector engine) which nodes to highlight.
// The highlight is drawn on a 2D canvas of its own above sigma's, which are dimmed by CSS: a
// selection never makes sigma draw again (a WebGL frame of 15,000 nodes takes about a second
// where chromium draws WebGL in software; the overlay, tens of milliseconds).
// Names reach the page only as canvas text or textContent, never as HTML.
(function () {
  "use strict";

  const COLORS = {
    model: "#3b82f6", source: "#16a34a", seed: "#d97706", snapshot: "#7c3aed", test: "#94a3b8",
    unit_test: "#94a3b8", exposure: "#db2777", metric: "#0891b2", semantic_model: "#0e7490",
    saved_query: "#0f766e", analysis: "#64748b", operation: "#64748b",
  };
  const CLUSTER_COLOR = "#475569";
  const EDGE = "#cbd5e1";
  const HIT_EDGE = "#2557d6";
  const LIST_LIMIT = 500;

  // The query string, read and written with encodeURIComponent: a `+` is dbt's graph operator,
  // never a space (%20 is).
  function readQuery() {
    const values = new Map();
    location.search.slice(1).split("&").filter(Boolean).forEach((part) => {
      const [rawKey, rawValue = ""] = part.split("=");
      let key, value;
      try { key = decodeURIComponent(rawKey); value = decodeURIComponent(rawValue); } catch (e) { return; }
      if (!values.has(key)) values.set(key, []);
      values.get(key).push(value);
    });
    return {
      get: (key) => (values.get(key) || [""])[0],
      all: (key) => values.get(key) || [],
      has: (key) => values.has(key),
    };
  }

  function writeQuery(pairs) {
    const query = pairs.filter(([, v]) => v !== "").map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
    history.replaceState(null, "", location.pathname + (query.length ? "?" + query.join("&") : ""));
  }

  function option(select, value, text) {
    const o = document.createElement("option");
    o.value = value;
    o.textContent = text;
    select.appendChild(o);
  }

  function start(root) {
    const started = performance.now();
    const canvas = root.querySelector(".explorer-canvas");
    const form = root.querySelector(".explorer-tools");
    const input = form.elements.select;
    const status = root.querySelector(".explorer-status");
    const errorBox = root.querySelector("[data-testid=explorer-error]");
    const selectionList = root.querySelector(".explorer-selection");
    const selectionCount = root.querySelector("[data-testid=explorer-selection-count]");
    const clustersBox = root.querySelector("[data-testid=explorer-clusters-box]");
    const clustersList = root.querySelector(".explorer-clusters");
    const nodeUrl = (id) => root.dataset.nodeUrl.replace("__ID__", encodeURIComponent(id));

    const query = readQuery();
    const state = {
      select: query.get("select"),
      hidden: new Set(query.get("hide").split(",").filter(Boolean)),
      tag: query.get("tag"),
      package: query.get("package"),
      folder: query.get("folder"),
      open: new Set(query.all("open")),
      clusters: query.get("clusters"), // "on", "off" or "" (by size)
    };
    let data = null;
    let graph = null;
    let renderer = null;
    let selected = null; // Set of unique_ids, or null without a selection
    let clusterHits = new Map(); // folder -> selected members drawn inside its cluster
    let byId = new Map(); // unique_id -> node of data
    let overlay = null; // the highlight's 2D canvas, above sigma's

    function clustered() {
      if (state.clusters === "on") return true;
      if (state.clusters === "off") return false;
      return data.node_count > data.cluster_threshold;
    }

    function saveState() {
      const pairs = [];
      const snapshot = readQuery().get("snapshot");
      if (snapshot) pairs.push(["snapshot", snapshot]);
      const column = readQuery().get("column"); // the column mode's (explorer_columns.js)
      if (column) pairs.push(["column", column]);
      pairs.push(["select", state.select], ["hide", [...state.hidden].sort().join(",")], ["tag", state.tag],
        ["package", state.package], ["folder", state.folder], ["clusters", state.clusters]);
      if (clustered()) [...state.open].sort().forEach((f) => pairs.push(["open", f]));
      writeQuery(pairs);
    }

    function passes(n) {
      if (state.hidden.has(n.resource_type)) return false;
      if (state.tag && !n.tags.includes(state.tag)) return false;
      if (state.package && n.package !== state.package) return false;
      if (state.folder && n.folder !== state.folder && !n.folder.startsWith(state.folder + "/")) return false;
      return true;
    }

    // Which key stands for each node on the canvas: itself, its folder's cluster, or none (filtered out).
    let representative = [];

    // A fresh graph each time (sigma swaps it in at once, instead of one event per node).
    function build() {
      graph = new graphology.Graph({ type: "directed" });
      const big = data.nodes.length > 5000;
      const size = big ? 2.5 : data.nodes.length > 500 ? 4 : 7;
      const grouped = clustered();
      const folders = new Map(data.folders.map((f) => [f.folder, f]));
      const counts = new Map();
      representative = data.nodes.map((n) => {
        if (!passes(n)) return null;
        if (grouped && !state.open.has(n.folder)) {
          const key = "folder:" + n.folder;
          counts.set(n.folder, (counts.get(n.folder) || 0) + 1);
          return key;
        }
        graph.addNode(n.id, {
          x: n.x, y: -n.y, size, label: n.name, color: COLORS[n.resource_type] || "#64748b", node: n,
        });
        return n.id;
      });
      counts.forEach((count, folder) => {
        const f = folders.get(folder);
        graph.addNode("folder:" + folder, {
          x: f.x, y: -f.y, size: Math.min(30, 5 + 1.5 * Math.sqrt(count)), color: CLUSTER_COLOR,
          label: `${folder || "(no folder)"} (${count})`, cluster: folder, count, forceLabel: true,
        });
      });
      data.edges.forEach(([a, b]) => {
        const from = representative[a], to = representative[b];
        if (from && to && from !== to && !graph.hasEdge(from, to)) graph.addEdge(from, to, { size: big ? 0.5 : 1, color: EDGE });
      });
      canvas.dataset.drawn = String(graph.order);
      canvas.dataset.nodeCount = String(representative.filter(Boolean).length);
      canvas.dataset.clusters = String(counts.size);
      renderClusterList(grouped);
      markSelection();
      if (renderer) renderer.setGraph(graph); // drawn at once, the highlight after it (afterRender)
    }

    function renderClusterList(grouped) {
      clustersBox.hidden = !grouped;
      clustersList.replaceChildren();
      if (!grouped) return;
      data.folders.forEach((f) => {
        const li = document.createElement("li");
        const button = document.createElement("button");
        button.type = "button";
        button.className = "link";
        button.dataset.folder = f.folder;
        button.setAttribute("aria-pressed", String(state.open.has(f.folder)));
        button.textContent = `${state.open.has(f.folder) ? "Close" : "Open"} ${f.folder || "(no folder)"} (${f.count})`;
        button.addEventListener("click", () => toggleFolder(f.folder));
        li.appendChild(button);
        clustersList.appendChild(li);
      });
    }

    function toggleFolder(folder) {
      if (state.open.has(folder)) state.open.delete(folder); else state.open.add(folder);
      saveState();
      build(); // sigma takes the new graph and draws it: no refresh besides
    }

    function isHit(key, attrs) {
      if (!selected) return false;
      return attrs.cluster !== undefined ? (clusterHits.get(attrs.cluster) || 0) > 0 : selected.has(key);
    }

    // Count what the canvas highlights, and list the selection (links to the node pages).
    function markSelection() {
      clusterHits = new Map();
      let highlighted = 0;
      if (selected) {
        data.nodes.forEach((n, i) => {
          const key = representative[i];
          if (!key || !selected.has(n.id)) return;
          highlighted += 1;
          if (key !== n.id) clusterHits.set(n.folder, (clusterHits.get(n.folder) || 0) + 1);
        });
      }
      canvas.dataset.highlighted = String(highlighted);
      canvas.dataset.selection = selected ? "active" : "none";
      selectionList.replaceChildren();
      selectionCount.textContent = String(selected ? selected.size : 0);
      if (!selected) return;
      [...selected].slice(0, LIST_LIMIT).forEach((id) => {
        const n = byId.get(id);
        const li = document.createElement("li");
        const badge = document.createElement("span");
        badge.className = "badge rt-" + (n ? n.resource_type : "");
        badge.textContent = n ? n.resource_type : "";
        const a = document.createElement("a");
        a.href = nodeUrl(id);
        a.dataset.uniqueId = id;
        a.title = id;
        a.textContent = n ? n.name : id;
        li.append(badge, " ", a);
        selectionList.appendChild(li);
      });
      if (selected.size > LIST_LIMIT) {
        const li = document.createElement("li");
        li.className = "muted";
        li.textContent = `and ${selected.size - LIST_LIMIT} more`;
        selectionList.appendChild(li);
      }
    }

    // The selection on the overlay: edges between two highlighted nodes, then the nodes (a ring
    // in their colour), then their labels when few; sigma's own canvases dimmed under it.
    function drawHighlight() {
      if (!overlay) return;
      const { width, height } = renderer.getDimensions();
      const ratio = window.devicePixelRatio || 1;
      if (overlay.width !== Math.round(width * ratio) || overlay.height !== Math.round(height * ratio)) {
        overlay.width = Math.round(width * ratio);
        overlay.height = Math.round(height * ratio);
        overlay.style.width = width + "px";
        overlay.style.height = height + "px";
      }
      const context = overlay.getContext("2d");
      context.setTransform(ratio, 0, 0, ratio, 0, 0);
      context.clearRect(0, 0, width, height);
      canvas.classList.toggle("dimmed", Boolean(selected));
      if (!selected) return;
      const hits = [];
      graph.forEachNode((key, attrs) => { if (isHit(key, attrs)) hits.push(key); });
      const place = new Map(hits.map((key) => {
        const shown = renderer.getNodeDisplayData(key);
        return [key, { ...renderer.framedGraphToViewport(shown), size: renderer.scaleSize(shown.size) }];
      }));
      context.strokeStyle = HIT_EDGE;
      context.lineWidth = 1.5;
      context.beginPath();
      hits.forEach((key) => {
        const from = place.get(key);
        graph.forEachOutNeighbor(key, (other) => {
          const to = place.get(other);
          if (to) { context.moveTo(from.x, from.y); context.lineTo(to.x, to.y); }
        });
      });
      context.stroke();
      const labelled = [];
      hits.forEach((key) => {
        const attrs = graph.getNodeAttributes(key);
        const { x, y, size } = place.get(key);
        if (x < -50 || y < -50 || x > width + 50 || y > height + 50) return;
        context.beginPath();
        context.arc(x, y, Math.max(size, 3), 0, 2 * Math.PI);
        context.fillStyle = attrs.color;
        context.fill();
        context.lineWidth = 1.5;
        context.strokeStyle = "#0f172a";
        context.stroke();
        if (hits.length <= 30 || attrs.forceLabel) labelled.push([attrs.label, x + Math.max(size, 3) + 3, y]);
      });
      context.font = "12px sans-serif";
      context.textBaseline = "middle";
      context.fillStyle = "#0f172a";
      labelled.forEach(([label, x, y]) => context.fillText(label || "", x, y));
    }

    function showError(message) {
      errorBox.hidden = !message;
      errorBox.textContent = message || "";
    }

    async function applySelection() {
      const text = state.select.trim();
      showError("");
      if (!data) return; // the graph's arrival applies it
      if (!text) {
        selected = null;
        markSelection();
        drawHighlight();
        return;
      }
      const begun = performance.now();
      const params = `select=${encodeURIComponent(text)}&snapshot=${encodeURIComponent(root.dataset.snapshot)}`;
      const response = await fetch(`${root.dataset.selectUrl}?${params}`, {
        credentials: "same-origin", headers: { Accept: "application/json" },
      });
      const body = await response.json().catch(() => ({}));
      canvas.dataset.requestMs = String(Math.round(performance.now() - begun));
      if (!response.ok) {
        selected = null;
        showError(body.detail || `The selector was refused (${response.status}).`);
      } else {
        selected = new Set(body.nodes);
      }
      markSelection();
      drawHighlight();
      canvas.dataset.selectMs = String(Math.round(performance.now() - begun));
      // Two frames later the highlight is on screen: the bench's selection time.
      requestAnimationFrame(() => requestAnimationFrame(() => {
        canvas.dataset.paintedMs = String(Math.round(performance.now() - begun));
        canvas.dataset.selected = text;
      }));
    }

    function fitToSelection() {
      if (!renderer) return;
      const keys = [];
      graph.forEachNode((key, attrs) => { if (isHit(key, attrs)) keys.push(key); });
      const camera = renderer.getCamera();
      if (!keys.length) { camera.animatedReset({ duration: 300 }); return; }
      let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
      keys.forEach((key) => {
        const d = renderer.getNodeDisplayData(key);
        minX = Math.min(minX, d.x); maxX = Math.max(maxX, d.x);
        minY = Math.min(minY, d.y); maxY = Math.max(maxY, d.y);
      });
      const ratio = Math.min(1, Math.max(0.03, Math.max(maxX - minX, maxY - minY) * 1.3));
      camera.animate({ x: (minX + maxX) / 2, y: (minY + maxY) / 2, ratio }, { duration: 300 });
    }

    function fillFilters() {
      const tags = new Set(), packages = new Set();
      data.nodes.forEach((n) => { n.tags.forEach((t) => tags.add(t)); packages.add(n.package); });
      [[form.elements.tag, [...tags]], [form.elements.package, [...packages]],
        [form.elements.folder, data.folders.map((f) => f.folder)]].forEach(([select, values]) => {
        values.sort().forEach((v) => option(select, v, v || "(none)"));
      });
      form.elements.tag.value = state.tag;
      form.elements.package.value = state.package;
      form.elements.folder.value = state.folder;
      form.querySelectorAll("input[name=type]").forEach((box) => { box.checked = !state.hidden.has(box.value); });
      input.value = state.select;
    }

    function draw() {
      build();
      const big = data.nodes.length > 5000;
      try {
        renderer = new Sigma(graph, canvas, {
          defaultEdgeType: big ? "line" : "arrow",
          hideEdgesOnMove: big,
          labelRenderedSizeThreshold: big ? 10 : 6,
        });
      } catch (err) {
        status.textContent = "This browser cannot draw the graph (WebGL is unavailable): the selection is listed below.";
        return;
      }
      renderer.on("clickNode", ({ node }) => {
        const attrs = graph.getNodeAttributes(node);
        if (attrs.cluster !== undefined) toggleFolder(attrs.cluster);
        else location.assign(nodeUrl(node));
      });
      overlay = document.createElement("canvas");
      overlay.className = "explorer-highlight";
      canvas.appendChild(overlay);
      renderer.on("afterRender", drawHighlight); // the camera moved, the graph or the size changed
      renderer.on("enterNode", () => { canvas.classList.add("pointing"); });
      renderer.on("leaveNode", () => { canvas.classList.remove("pointing"); });
      // For people and the browser tests: where a node is drawn, in the canvas's pixels.
      canvas.explorer = {
        viewportPosition: (key) => renderer.graphToViewport(graph.getNodeAttributes(key)),
        cameraRatio: () => renderer.getCamera().ratio,
      };
    }

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      state.select = input.value;
      saveState();
      applySelection().catch((err) => showError("The selection failed: " + err.message));
    });
    form.addEventListener("change", (event) => {
      const target = event.target;
      if (target.name === "select" || !data) return;
      if (target.name === "type") {
        if (target.checked) state.hidden.delete(target.value); else state.hidden.add(target.value);
      } else if (["tag", "package", "folder"].includes(target.name)) {
        state[target.name] = target.value;
      }
      saveState();
      build(); // sigma takes the new graph and draws it: no refresh besides
    });
    root.querySelector("[data-action=fit]").addEventListener("click", fitToSelection);
    root.querySelector("[data-action=clear]").addEventListener("click", () => {
      input.value = "";
      state.select = "";
      saveState();
      applySelection().catch((err) => showError("The selection failed: " + err.message));
      if (renderer) renderer.getCamera().animatedReset({ duration: 300 });
    });

    fetch(root.dataset.graphUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => { if (!r.ok) throw new Error(r.statusText || String(r.status)); return r.json(); })
      .then(async (graphData) => {
        data = graphData;
        byId = new Map(data.nodes.map((n) => [n.id, n]));
        fillFilters();
        draw();
        const drawn = Number(canvas.dataset.drawn);
        status.textContent = `${data.node_count} nodes and ${data.edges.length} edges; ${drawn} drawn` +
          (clustered() ? `, folders as clusters (click one to open it)` : "") + ".";
        if (state.select) await applySelection();
        // Two frames later the graph is on screen: since the navigation started, the bench's
        // time to interactive (bench/explorer.py).
        requestAnimationFrame(() => requestAnimationFrame(() => {
          canvas.dataset.readyMs = String(Math.round(performance.now()));
          canvas.dataset.scriptMs = String(Math.round(performance.now() - started));
          canvas.dataset.ready = "1";
        }));
      })
      .catch((err) => { status.textContent = "Could not load the graph: " + err.message; });
  }

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll(".explorer[data-graph-url]").forEach(start);
  });
})();
