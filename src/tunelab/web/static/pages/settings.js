// Settings: the current base model with its limits, the other models (make one current), the generation worker.
"use strict";

const WORKER_POLL_MS = 2000;
const WORKER_TEXT = {
  stopped: "Starts when a clip is asked for.",
  starting: "Loading the model…",
  ready: "Making clips on request.",
  failed: "It stopped; the next clip asked for starts it again.",
};

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting, notify } = window.TuneLab;

  Alpine.data("settingsPage", () => {
    let timer = null;
    return {
      ...formatting,
      models: [],
      adapterCounts: {},
      loaded: false,
      loadError: "",
      switching: null,
      worker: null,
      workerError: "",

      async init() {
        await Promise.all([this.load(), this.loadWorker()]);
      },

      destroy() {
        clearTimeout(timer);
      },

      async load() {
        try {
          const [models, adapters] = await Promise.all([api("GET", "/api/models"),
            api("GET", "/api/adapters?page_size=500")]);
          this.models = models.items;
          const counts = {};
          for (const a of adapters.items) counts[a.base_model_id] = (counts[a.base_model_id] || 0) + 1;
          this.adapterCounts = counts;
          this.loadError = "";
        } catch (err) {
          this.loadError = `Could not load the models: ${describeError(err)}`;
        } finally {
          this.loaded = true;
        }
      },

      get current() {
        return this.models.find((m) => m.current) || null;
      },

      get others() {
        return this.models.filter((m) => !m.current);
      },

      adapterCount(modelId) {
        return this.adapterCounts[modelId] || 0;
      },

      modelName(modelId) {
        const found = this.models.find((m) => m.id === modelId);
        return found ? found.display_name : modelId;
      },

      async makeCurrent(model) {
        this.switching = model.id;
        try {
          await api("PATCH", "/api/settings", { current_model_id: model.id });
          await this.load();
          const count = this.adapterCount(model.id);
          notify(`${model.display_name} is the current model: clips are made with it, and its ${count} `
            + `adapter${count === 1 ? "" : "s"} can be used.`);
          await this.loadWorker();
        } catch (err) {
          notify(`Could not change the model: ${describeError(err)}`, "error");
        } finally {
          this.switching = null;
        }
      },

      /** The worker's state; looked at again every few seconds while it is starting or has work. */
      async loadWorker() {
        clearTimeout(timer);
        try {
          this.worker = await api("GET", "/api/generation-worker");
          this.workerError = "";
        } catch (err) {
          this.workerError = `Could not ask the generation worker: ${describeError(err)}`;
        }
        const busy = this.worker && (this.worker.state === "starting" || this.worker.queued + this.worker.held > 0);
        if (busy) timer = setTimeout(() => this.loadWorker(), WORKER_POLL_MS);
      },

      get workerClass() {
        return { ready: "badge-completed", starting: "badge-running", failed: "badge-failed" }[this.worker.state] || "";
      },

      get workerText() {
        return WORKER_TEXT[this.worker.state] || "";
      },

      get cacheText() {
        const cache = this.worker.cache || {};
        const loaded = Array.isArray(cache.adapters) ? cache.adapters.length : 0;
        if (cache.budget_bytes == null) return String(loaded);
        return `${loaded} (${format.bytes(cache.used_bytes || 0)} of ${format.bytes(cache.budget_bytes)})`;
      },
    };
  });
});
