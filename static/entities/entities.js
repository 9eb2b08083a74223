// The canary percentage only applies to mode canary: enable the field only then.
(function () {
  document.addEventListener("DOMContentLoaded", () => {
    document.querySelectorAll("[data-testid=request-form]").forEach((form) => {
      const mode = form.querySelector("select[name=mode]");
      const percent = form.querySelector("input[name=canary_percent]");
      if (!mode || !percent) return;
      const sync = () => {
        const canary = mode.value === "canary";
        percent.disabled = !canary;
        percent.required = canary;
        if (!canary) percent.value = "";
      };
      mode.addEventListener("change", sync);
      sync();
    });
  });
})();
