// Times in the viewer's timezone, with a relative hint ("3 min ago").
(function () {
  const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });
  const units = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];
  function relative(date) {
    const diff = (date - Date.now()) / 1000;
    for (const [unit, secs] of units) {
      if (Math.abs(diff) >= secs || unit === "second") return rtf.format(Math.round(diff / secs), unit);
    }
  }
  window.portalLocalTimes = function (root) {
    (root || document).querySelectorAll("time[datetime]").forEach((el) => {
      const date = new Date(el.getAttribute("datetime"));
      if (isNaN(date)) return;
      el.title = el.textContent.trim();
      el.textContent = date.toLocaleString() + " (" + relative(date) + ")";
    });
  };
  document.addEventListener("DOMContentLoaded", () => window.portalLocalTimes());
})();
