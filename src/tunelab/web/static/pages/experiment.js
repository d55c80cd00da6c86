// One experiment: what went in and came out, its runs (kept fresh while any is going), and the comparison of the
// runs picked.
"use strict";

/** Adapter pages are linked from run rows; one place to change if their address moves. */
const ADAPTER_PAGE = (adapter) => `/adapters/${encodeURIComponent(adapter.id)}`;
const POLL_MS = 3000;
const ACTIVE_RUN = ["pending", "running"];
/** Input types that hold the training data, for an experiment that names no dataset_id. */
const DATASET_INPUTS = ["dataset", "datasets", "dataset_export"];
const ARTIFACT_FETCHES_AT_ONCE = 6;
const GOAL_LABELS = { min: "lower is better", max: "higher is better", none: "not ranked" };
/** The options the start form shows; every other one keeps its default (or the experiment's config). */
const FORM_OPTIONS = ["epochs", "batch_size", "learning_rate", "lora_r", "lora_alpha", "max_audio_seconds", "beta",
  "min_rating"];

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
    unarchiving: false,
    /** Artifact id -> the artifact, or { missing: true } / { error } once asked. */
    artifacts: {},
    pollTimer: null,
    refreshSeq: 0,
    dataset: null,
    datasets: [],
    pickedDataset: "",
    options: [],
    runConfig: {},
    runName: "",
    runProblems: [],
    starting: false,
    overlayKey: "",
    overlayRuns: 0,
    overlayPlot: null,

    init() {
      this.id = this.$el.dataset.experimentId;
      // A hidden tab stops asking; coming back asks at once if something is still going.
      document.addEventListener("visibilitychange", () => {
        if (document.hidden) this.stopPolling();
        else if (this.active && !this.pollTimer) this.refresh();
      });
      this.refresh();
    },

    destroy() {
      this.stopPolling();
    },

    /** Something may still change on its own: the experiment or one of its runs has not ended. */
    get active() {
      return Boolean(this.exp) && (this.exp.status === "running" || this.runs.some((r) => ACTIVE_RUN.includes(r.status)));
    },

    get polling() {
      return this.active && this.pollTimer !== null;
    },

    async refresh() {
      this.stopPolling();
      const seq = ++this.refreshSeq;
      this.loadError = "";
      try {
        const data = await api("GET", `/api/experiments/${encodeURIComponent(this.id)}`);
        if (seq !== this.refreshSeq) return;
        this.exp = data;
        this.runs = data.runs || [];
        const known = new Set(this.runs.map((run) => run.id));
        this.selected = this.selected.filter((id) => known.has(id));
        document.title = `${data.name} · TuneLab`;
        this.fetchArtifacts();
        this.fetchTrainingChoices();
      } catch (err) {
        if (seq === this.refreshSeq) this.loadError = `Could not load the experiment: ${describeError(err)}`;
      } finally {
        if (seq === this.refreshSeq) {
          this.loading = false;
          this.schedulePoll();
        }
      }
    },

    schedulePoll() {
      if (!this.active || document.hidden || this.pollTimer) return;
      this.pollTimer = setTimeout(() => {
        this.pollTimer = null;
        this.refresh();
      }, POLL_MS);
    },

    stopPolling() {
      clearTimeout(this.pollTimer);
      this.pollTimer = null;
    },

    async unarchive() {
      this.unarchiving = true;
      try {
        const restored = await api("POST", `/api/experiments/${encodeURIComponent(this.id)}/unarchive`);
        // The answer may lack the detail's runs and aggregates; keep the ones we have.
        this.exp = { ...this.exp, ...restored };
        notify(`Restored “${restored.name}” as an active experiment.`);
      } catch (err) {
        notify(`Could not unarchive “${this.exp.name}”: ${describeError(err)}`, "error");
      } finally {
        this.unarchiving = false;
      }
    },

    // Starting a run

    async fetchTrainingChoices() {
      try {
        if (this.exp.dataset_id && (!this.dataset || this.dataset.id !== this.exp.dataset_id)) {
          this.dataset = await api("GET", `/api/datasets/${encodeURIComponent(this.exp.dataset_id)}`);
        }
        if (!this.exp.dataset_id && this.datasets.length === 0) this.datasets = (await api("GET", "/api/datasets")).items;
        if (this.options.length === 0) {
          this.options = await api("GET", "/api/training/options");
          const config = this.exp.config || {};
          for (const option of this.options) {
            const value = option.name in config ? config[option.name] : option.default;
            this.runConfig[option.name] = Array.isArray(value) ? value.join(",") : String(value);
          }
        }
      } catch (err) {
        // The run form stays as it is; the error shows when the user acts.
      }
    },

    get shownOptions() {
      return this.options.filter((option) => FORM_OPTIONS.includes(option.name));
    },

    async linkDataset() {
      try {
        this.exp = { ...this.exp, ...(await api("PATCH", `/api/experiments/${encodeURIComponent(this.id)}`,
          { dataset_id: this.pickedDataset })) };
        this.dataset = null;
        await this.fetchTrainingChoices();
        notify("The dataset is linked: start a run when you are ready.");
      } catch (err) {
        notify(`Could not link the dataset: ${describeError(err)}`, "error");
      }
    },

    /** Only what differs from the defaults shown is sent: the experiment's config stays the source of the rest. */
    changedConfig() {
      const config = {};
      const base = this.exp.config || {};
      for (const option of this.shownOptions) {
        const text = String(this.runConfig[option.name] ?? "").trim();
        const shown = option.name in base ? base[option.name] : option.default;
        if (text === String(shown)) continue;
        const number = Number(text);
        config[option.name] = text !== "" && !Number.isNaN(number) ? number : text;
      }
      return config;
    },

    problemFor(name) {
      return this.runProblems.find((problem) => problem.includes(name)) || "";
    },

    async startRun() {
      this.starting = true;
      this.runProblems = [];
      const body = { config: this.changedConfig() };
      if (this.runName.trim()) body.name = this.runName.trim();
      try {
        const run = await api("POST", `/api/experiments/${encodeURIComponent(this.id)}/runs`, body);
        window.location.assign(`/runs/${encodeURIComponent(run.id)}`);
      } catch (err) {
        this.runProblems = err.code === "invalid_config" ? err.details.problems || [err.message] : [describeError(err)];
      } finally {
        this.starting = false;
      }
    },

    // What went in and came out

    get configEntries() {
      return Object.entries((this.exp && this.exp.config) || {});
    },

    configText(value) {
      return value !== null && typeof value === "object" ? JSON.stringify(value, null, 2) : String(value);
    },

    /** The data the experiment trains on: its dataset_id, else its inputs of a dataset type. */
    get datasetIds() {
      if (!this.exp) return [];
      if (this.exp.dataset_id) return [this.exp.dataset_id];
      return DATASET_INPUTS.flatMap((type) => this.exp.inputs[type] || []);
    },

    /** One row per input artifact, in the order the experiment lists them. */
    get inputRows() {
      return Object.entries((this.exp && this.exp.inputs) || {}).flatMap(([role, ids]) =>
        ids.map((id, index) => ({ key: `${role}/${index}/${id}`, role, id })),
      );
    },

    get outputRows() {
      return Object.entries((this.exp && this.exp.outputs) || {}).map(([role, id]) => ({ key: role, role, id }));
    },

    async fetchArtifacts() {
      const ids = [...this.datasetIds, ...this.inputRows.map((r) => r.id), ...this.outputRows.map((r) => r.id)];
      const wanted = [...new Set(ids)].filter((id) => !(id in this.artifacts));
      for (const id of wanted) this.artifacts[id] = { loading: true };
      // A few at a time: an experiment may list hundreds of inputs.
      for (let start = 0; start < wanted.length; start += ARTIFACT_FETCHES_AT_ONCE) {
        await Promise.all(wanted.slice(start, start + ARTIFACT_FETCHES_AT_ONCE).map((id) => this.fetchArtifact(id)));
      }
    },

    async fetchArtifact(id) {
      try {
        this.artifacts[id] = await api("GET", `/api/artifacts/${encodeURIComponent(id)}`);
      } catch (err) {
        this.artifacts[id] = err.code === "artifact_not_found" ? { missing: true } : { error: describeError(err) };
      }
    },

    artifact(id) {
      return this.artifacts[id] || { loading: true };
    },

    // Runs and their comparison

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
        this.overlay(ids);
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

    /** The runs' loss curves on one chart (the first of loss, eval_loss, train_loss any of them has). */
    async overlay(ids) {
      const keys = ["loss", "eval_loss", "train_loss"].filter((key) => key in this.comparison.metrics);
      this.overlayKey = keys[0] || "";
      if (!this.overlayKey) return;
      const params = new URLSearchParams({ ids: ids.join(","), key: this.overlayKey, max_points: "1000" });
      const history = await api("GET", `/api/runs/metrics?${params}`);
      const present = ids.filter((id) => history.runs[id]);
      const data = uPlot.join(present.map((id) => [history.runs[id].steps, history.runs[id].values]));
      const names = Object.fromEntries(this.runs.map((run) => [run.id, run.name]));
      const colors = ["#4f7cff", "#e5484d", "#30a46c", "#f5a524", "#8e4ec6", "#12a594"];
      await this.$nextTick();
      if (this.overlayPlot) this.overlayPlot.destroy();
      const box = this.$refs.overlay;
      box.textContent = "";
      this.overlayPlot = new uPlot({
        width: Math.max(260, box.clientWidth || 600), height: 240, scales: { x: { time: false } },
        axes: [{ label: "step" }, { values: (plot, splits) => splits.map((v) => format.number(v)), size: 60 }],
        series: [{ label: "step" }, ...present.map((id, i) => ({ label: names[id] || id, stroke: colors[i % colors.length],
          width: 2, spanGaps: true }))],
      }, data, box);
      this.overlayRuns = present.length;
    },

    metricKeys() {
      return this.comparison ? Object.keys(this.comparison.metrics).sort() : [];
    },

    goalLabel(key) {
      return GOAL_LABELS[this.comparison.metrics[key].goal] || GOAL_LABELS.none;
    },

    metricValue(key, runId) {
      return format.number(this.comparison.metrics[key].values[runId]);
    },

    /** Every run tied for the best value is the best; a metric that is not ranked has none. */
    isBest(key, runId) {
      return (this.comparison.metrics[key].best_run_ids || []).includes(runId);
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
