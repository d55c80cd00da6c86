// One experiment: its facts, runs and the comparison of the runs picked.
"use strict";

/** Adapter pages are linked from run rows; one place to change if their address moves. */
const ADAPTER_PAGE = (adapter) => `/adapters/${encodeURIComponent(adapter.id)}`;

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting, notify } = window.TuneLab;

  Alpine.data("experimentPage", () => ({
    ...formatting,
    id: "",
    exp: null,
    runs: [],
    loading: true,
    loadError: "",
    selected: [],
    comparison: null,
    comparing: false,

    init() {
      this.id = this.$el.dataset.experimentId;
      this.refresh();
    },

    async refresh() {
      this.loadError = "";
      try {
        const data = await api("GET", `/api/experiments/${encodeURIComponent(this.id)}`);
        this.exp = data;
        this.runs = data.runs || [];
        const known = new Set(this.runs.map((run) => run.id));
        this.selected = this.selected.filter((id) => known.has(id));
        document.title = `${data.name} · TuneLab`;
      } catch (err) {
        this.loadError = `Could not load the experiment: ${describeError(err)}`;
      } finally {
        this.loading = false;
      }
    },

    adapterUrl: ADAPTER_PAGE,

    toggleAll(checked) {
      this.selected = checked ? this.runs.map((run) => run.id) : [];
    },

    async compare() {
      if (this.selected.length < 2) return;
      this.comparing = true;
      // Keep the table's order (newest first) rather than the order the boxes were ticked.
      const ids = this.runs.filter((run) => this.selected.includes(run.id)).map((run) => run.id);
      try {
        const params = new URLSearchParams({ ids: ids.join(",") });
        this.comparison = await api("GET", `/api/runs/compare?${params}`);
        this.$nextTick(() => {
          const section = this.$root.querySelector("[data-testid=comparison]");
          if (section) section.scrollIntoView({ behavior: "smooth", block: "start" });
        });
      } catch (err) {
        notify(`Could not compare the runs: ${describeError(err)}`, "error");
      } finally {
        this.comparing = false;
      }
    },

    metricKeys() {
      return this.comparison ? Object.keys(this.comparison.metrics).sort() : [];
    },

    metricValue(key, runId) {
      const value = this.comparison.metrics[key].values[runId];
      return value === undefined || value === null ? "—" : format.number(value);
    },

    isBest(key, runId) {
      return this.comparison.metrics[key].best_run_id === runId;
    },

    configKeys() {
      if (!this.comparison) return [];
      const keys = new Set();
      for (const run of this.comparison.runs) Object.keys(run.config || {}).forEach((key) => keys.add(key));
      return [...keys].sort();
    },

    configValue(run, key) {
      return format.scalar((run.config || {})[key]);
    },

    configDiffers(key) {
      const values = this.comparison.runs.map((run) => JSON.stringify((run.config || {})[key]));
      return new Set(values).size > 1;
    },
  }));
});
