// Lineage picture (layered left-to-right SVG) and the whole-project folder view.
(function () {
  const SVG = "http://www.w3.org/2000/svg";
  const BOX_W = 190, BOX_H = 30, COL_GAP = 90, ROW_GAP = 14, PAD = 12;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function statusClass(status) {
    if (["success", "pass"].includes(status)) return "st-ok";
    if (["error", "fail", "runtime error"].includes(status)) return "st-fail";
    if (status === "warn") return "st-warn";
    if (status) return "st-other";
    return "";
  }

  // Columns by signed hop distance; inside a column, order by the mean row of neighbours
  // (two sweeps) so edges cross less.
  function layout(graph) {
    const columns = new Map();
    graph.nodes.forEach((n) => {
      if (!columns.has(n.hops)) columns.set(n.hops, []);
      columns.get(n.hops).push(n);
    });
    const keys = [...columns.keys()].sort((a, b) => a - b);
    const row = new Map();
    keys.forEach((k) => columns.get(k).forEach((n, i) => row.set(n.unique_id, i)));
    const neighbours = new Map(graph.nodes.map((n) => [n.unique_id, []]));
    graph.edges.forEach(([p, c]) => {
      if (neighbours.has(p) && neighbours.has(c)) { neighbours.get(p).push(c); neighbours.get(c).push(p); }
    });
    const sweep = (order) => order.forEach((k) => {
      const col = columns.get(k);
      const score = (n) => {
        const ns = neighbours.get(n.unique_id);
        return ns.length ? ns.reduce((s, id) => s + row.get(id), 0) / ns.length : row.get(n.unique_id);
      };
      col.sort((a, b) => score(a) - score(b) || a.name.localeCompare(b.name));
      col.forEach((n, i) => row.set(n.unique_id, i));
    });
    sweep(keys); sweep([...keys].reverse()); sweep(keys);
    const tallest = Math.max(...keys.map((k) => columns.get(k).length));
    const pos = new Map();
    keys.forEach((k, ci) => {
      const col = columns.get(k);
      const offset = ((tallest - col.length) * (BOX_H + ROW_GAP)) / 2;
      col.forEach((n, i) => pos.set(n.unique_id, {
        x: PAD + ci * (BOX_W + COL_GAP), y: PAD + offset + i * (BOX_H + ROW_GAP),
      }));
    });
    return {
      pos, width: PAD * 2 + keys.length * BOX_W + (keys.length - 1) * COL_GAP,
      height: PAD * 2 + tallest * (BOX_H + ROW_GAP) - ROW_GAP,
    };
  }

  function draw(container, graph) {
    const { pos, width, height } = layout(graph);
    const svg = el("svg", { width, height, viewBox: `0 0 ${width} ${height}`, class: "lineage-svg" }, container);
    const edges = el("g", { class: "edges" }, svg);
    graph.edges.forEach(([p, c]) => {
      const a = pos.get(p), b = pos.get(c);
      if (!a || !b) return;
      const x1 = a.x + BOX_W, y1 = a.y + BOX_H / 2, x2 = b.x, y2 = b.y + BOX_H / 2;
      const mid = (x1 + x2) / 2;
      const path = el("path", { d: `M${x1},${y1} C${mid},${y1} ${mid},${y2} ${x2},${y2}`, class: "edge" }, edges);
      path.dataset.parent = p;
      path.dataset.child = c;
    });
    if (graph.edges.length > 150) svg.classList.add("crowded");
    // Hover or focus a node: its own edges stand out, the others fade.
    const highlight = (uid) => {
      svg.classList.toggle("focus", uid !== null);
      edges.querySelectorAll(".edge").forEach((e) => {
        e.classList.toggle("hl", uid !== null && (e.dataset.parent === uid || e.dataset.child === uid));
      });
    };
    graph.nodes.forEach((n) => {
      const p = pos.get(n.unique_id);
      const link = el("a", { href: n.url, "data-unique-id": n.unique_id, class: "node-link" }, svg);
      ["mouseenter", "focus"].forEach((ev) => link.addEventListener(ev, () => highlight(n.unique_id)));
      ["mouseleave", "blur"].forEach((ev) => link.addEventListener(ev, () => highlight(null)));
      const classes = ["node", "rt-" + n.resource_type, statusClass(n.status)];
      if (n.unique_id === graph.center) classes.push("center");
      const g = el("g", { class: classes.join(" "), transform: `translate(${p.x},${p.y})` }, link);
      el("rect", { width: BOX_W, height: BOX_H, rx: 5 }, g);
      const title = el("title", {}, g);
      title.textContent = n.title || `${n.unique_id} (${n.resource_type}${n.status ? ", " + n.status : ""})`;
      const label = el("text", { x: 8, y: BOX_H / 2 + 4 }, g);
      label.textContent = n.label.length > 26 ? n.label.slice(0, 25) + "…" : n.label;
    });
    const center = pos.get(graph.center);
    if (center) container.scrollLeft = Math.max(0, center.x - container.clientWidth / 2 + BOX_W / 2);
  }

  function loadGroup(details, root) {
    if (details.dataset.loaded) return;
    details.dataset.loaded = "1";
    const list = details.querySelector(".lineage-group-nodes");
    const params = new URLSearchParams({ folder: details.dataset.folder });
    if (root.dataset.snapshot) params.set("snapshot", root.dataset.snapshot);
    fetch(`${root.dataset.nodesUrl}?${params}`, { credentials: "same-origin" })
      .then((r) => { if (!r.ok) throw new Error(r.statusText); return r.json(); })
      .then((data) => {
        list.replaceChildren();
        data.nodes.forEach((n) => {
          const li = document.createElement("li");
          const badge = document.createElement("span");
          badge.className = "badge rt-" + n.resource_type;
          badge.textContent = n.resource_type;
          const a = document.createElement("a");
          a.href = n.url;
          a.textContent = n.name;
          li.append(badge, " ", a);
          if (n.status) {
            const st = document.createElement("span");
            st.className = "badge status-" + n.status;
            st.textContent = n.status;
            li.append(" ", st);
          }
          list.appendChild(li);
        });
        if (data.more) {
          const li = document.createElement("li");
          li.className = "muted";
          li.textContent = "More nodes in this folder: use the search on the project page.";
          list.appendChild(li);
        }
      })
      .catch((err) => { list.replaceChildren(); list.textContent = "Could not load: " + err.message; delete details.dataset.loaded; });
  }

  // The explorer's column mode (explorer_columns.js) draws its column graphs with it too.
  window.lineagePicture = draw;

  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-graph]").forEach((container) => {
      const data = document.getElementById(container.dataset.graph);
      if (data) draw(container, JSON.parse(data.textContent));
    });
    const root = document.querySelector(".lineage-groups");
    if (root) {
      root.querySelectorAll("details.lineage-group").forEach((d) => {
        d.addEventListener("toggle", () => { if (d.open) loadGroup(d, root); });
      });
      // A folder box in the picture links to #folder-N: open that row.
      const openFromHash = () => {
        const target = location.hash && document.getElementById(location.hash.slice(1));
        if (target && target.tagName === "DETAILS") { target.open = true; target.scrollIntoView(); }
      };
      window.addEventListener("hashchange", openFromHash);
      openFromHash();
    }
  });
})();
