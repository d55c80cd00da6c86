// Adapters side by side (?ids=a,b,…): their metrics with the better value per metric, then their training
// configurations with the rows that differ marked, optionally only those.
"use strict";

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting } = window.TuneLab;
  const { GOAL_LABELS, configText, breakable } = window.TuneLab.adapters;

  Alpine.data("adapterComparePage", () => ({
    ...formatting,
    configText,
    breakable,
    comparison: null,
    loadError: "",
    onlyDifferences: false,

    async init() {
      const params = new URLSearchParams(window.location.search);
      this.onlyDifferences = params.get("only_differences") === "true";
      const ids = (params.get("ids") || "").split(",").map((id) => id.trim()).filter(Boolean);
      if (ids.length < 2) {
        this.loadError = "Choose two or more adapters to compare: tick them in the adapter list, then press Compare.";
        return;
      }
      try {
        this.comparison = await api("GET", `/api/adapters/compare?ids=${ids.map(encodeURIComponent).join(",")}`);
        const names = this.comparison.adapters.map((a) => `${a.name} ${a.version}`);
        document.title = `Compare ${names.join(" · ")} · TuneLab`;
      } catch (err) {
        this.loadError = `These adapters cannot be compared: ${describeError(err)}`;
      }
    },

    setOnlyDifferences(value) {
      this.onlyDifferences = value;
      const url = new URL(window.location.href);
      if (value) url.searchParams.set("only_differences", "true");
      else url.searchParams.delete("only_differences");
      history.replaceState(null, "", `${url.pathname}${url.search}`);
    },

    get metricKeys() {
      return Object.keys(this.comparison.metrics);
    },

    get configKeys() {
      const keys = Object.keys(this.comparison.config);
      return this.onlyDifferences ? keys.filter((key) => this.differs(key)) : keys;
    },

    differs(key) {
      return this.comparison.differing.includes(key);
    },

    goalLabel(key) {
      return GOAL_LABELS[this.comparison.metrics[key].goal] || GOAL_LABELS.none;
    },

    isBest(key, id) {
      return this.comparison.metrics[key].best_id === id;
    },
  }));
});
