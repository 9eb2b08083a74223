// The header's search box: `/` anywhere (outside a field) focuses it; typing asks
// /api/v1/search/ and lists the ranked results grouped by kind; ↑/↓ choose, Enter opens,
// Esc closes. Everything shown is set as text (never HTML). Without JavaScript the form
// still submits to the results page.
(function () {
  const LABELS = { node: "Nodes", column: "Columns", tag: "Tags", job: "Jobs", run: "Runs", environment: "Environments" };
  const DELAY_MS = 120;

  function isTyping(target) {
    if (!target || !(target instanceof Element)) return false;
    return target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName);
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function setUp(form) {
    const input = form.querySelector("input[name=q]");
    const api = form.dataset.api;
    const box = el("div", "site-search-results");
    box.id = "site-search-results";
    box.setAttribute("role", "listbox");
    box.setAttribute("aria-label", "Search results");
    box.dataset.testid = "site-search-results";
    box.hidden = true;
    form.appendChild(box);
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-controls", box.id);
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-autocomplete", "list");

    let options = [];
    let active = -1;
    let timer = null;
    let asked = 0;

    function close() {
      box.hidden = true;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      active = -1;
    }

    function choose(index) {
      if (!options.length) return;
      active = (index + options.length) % options.length;
      options.forEach((option, i) => option.setAttribute("aria-selected", i === active ? "true" : "false"));
      input.setAttribute("aria-activedescendant", options[active].id);
      options[active].scrollIntoView({ block: "nearest" });
    }

    function seeAllUrl(query) {
      return form.getAttribute("action") + "?" + new URLSearchParams({ q: query }).toString();
    }

    function render(query, results) {
      box.replaceChildren();
      options = [];
      active = -1;
      const groups = new Map();
      for (const result of results) {
        if (!groups.has(result.kind)) groups.set(result.kind, []);
        groups.get(result.kind).push(result);
      }
      for (const [kind, rows] of groups) {
        const group = el("div", "site-search-group");
        group.setAttribute("role", "group");
        group.dataset.kind = kind;
        const heading = el("div", "site-search-kind", LABELS[kind] || kind);
        heading.id = "site-search-kind-" + kind;
        group.setAttribute("aria-labelledby", heading.id);
        group.appendChild(heading);
        for (const result of rows) {
          const url = String(result.url || "");
          const option = el("a", "site-search-option");
          option.href = url.startsWith("/") && !url.startsWith("//") ? url : "#";
          option.id = "site-search-option-" + options.length;
          option.setAttribute("role", "option");
          option.setAttribute("aria-selected", "false");
          option.tabIndex = -1;
          option.appendChild(el("span", "site-search-name", result.name));
          const where = [result.detail, result.project].filter(Boolean).join(" · ");
          if (where) option.appendChild(el("span", "site-search-detail", where));
          if (result.snippet) option.appendChild(el("span", "site-search-snippet", result.snippet));
          group.appendChild(option);
          options.push(option);
        }
        box.appendChild(group);
      }
      if (!results.length) box.appendChild(el("div", "site-search-none", "Nothing matches."));
      const all = el("a", "site-search-all", "See all results");
      all.href = seeAllUrl(query);
      box.appendChild(all);
      box.hidden = false;
      input.setAttribute("aria-expanded", "true");
    }

    async function ask() {
      const query = input.value.trim();
      const mine = ++asked;
      if (!query) {
        close();
        return;
      }
      try {
        const url = api + "?" + new URLSearchParams({ q: query, per_kind: "5", limit: "20" }).toString();
        const response = await fetch(url, { headers: { Accept: "application/json" }, credentials: "same-origin" });
        if (mine !== asked) return; // a newer search is on its way
        if (!response.ok) {
          box.replaceChildren(el("div", "site-search-none", "Search failed (" + response.status + ")."));
          box.hidden = false;
          return;
        }
        const body = await response.json();
        if (mine === asked) render(query, body.results || []);
      } catch (error) {
        if (mine === asked) {
          box.replaceChildren(el("div", "site-search-none", "Search failed."));
          box.hidden = false;
        }
      }
    }

    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(ask, DELAY_MS);
    });
    input.addEventListener("focus", () => {
      if (input.value.trim() && box.childElementCount) {
        box.hidden = false;
        input.setAttribute("aria-expanded", "true");
      }
    });
    input.addEventListener("keydown", (event) => {
      if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        if (box.hidden) return;
        event.preventDefault();
        choose(active + (event.key === "ArrowDown" ? 1 : -1));
      } else if (event.key === "Enter") {
        if (!box.hidden && active >= 0 && options[active]) {
          event.preventDefault();
          window.location.assign(options[active].href);
        } // else the form submits: the full results page
      } else if (event.key === "Escape") {
        event.preventDefault();
        close();
        input.blur();
      }
    });
    document.addEventListener("click", (event) => {
      if (!form.contains(event.target)) close();
    });
    document.addEventListener("keydown", (event) => {
      if (event.key !== "/" || event.ctrlKey || event.metaKey || event.altKey || isTyping(event.target)) return;
      event.preventDefault();
      input.focus();
      input.select();
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.querySelector("form.site-search[data-api]");
    if (form) setUp(form);
  });
})();
