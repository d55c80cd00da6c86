// TuneLab pages: Alpine.js components that talk to the JSON API under /api.
"use strict";

/** Adapter pages are linked from run rows; one place to change if their address moves. */
const ADAPTER_PAGE = (adapter) => `/adapters/${encodeURIComponent(adapter.id)}`;
const TOAST_MS = 6000;
const PAGE_SIZE = 100;

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

/** Call the JSON API; resolve to the parsed body or throw an ApiError built from the error envelope. */
async function api(method, url, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "network_error", "The server could not be reached. Is TuneLab still running?");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `The request failed (HTTP ${response.status}).`,
      error.details,
    );
  }
  return data;
}

/** A readable message for an ApiError; the envelope's message already names the first field problem. */
function describeError(err) {
  const problems = Array.isArray(err.details && err.details.errors) ? err.details.errors : [];
  const more = problems
    .slice(1)
    .map((p) => (p && p.msg ? `${(p.loc || []).filter((l) => l !== "body").join(".")}: ${p.msg}` : ""))
    .filter(Boolean);
  return more.length ? `${err.message}; ${more.join("; ")}` : err.message;
}

const format = {
  number(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    if (Number.isInteger(value)) return String(value);
    return String(Number(value.toPrecision(4)));
  },
  date(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  },
  status(status) {
    return status ? status.charAt(0).toUpperCase() + status.slice(1) : "";
  },
  scalar(value) {
    if (value === undefined) return "—";
    if (typeof value === "number") return format.number(value);
    if (value !== null && typeof value === "object") return JSON.stringify(value);
    return String(value);
  },
  config(config) {
    const entries = Object.entries(config || {});
    if (entries.length === 0) return "—";
    const shown = entries.slice(0, 4).map(([key, value]) => `${key}=${format.scalar(value)}`);
    return shown.join(", ") + (entries.length > 4 ? `, +${entries.length - 4} more` : "");
  },
};

/** Shared helpers every page component mixes in. */
const formatting = {
  fmt: format.number,
  fmtDate: format.date,
  statusLabel: format.status,
  configSummary: format.config,
};

document.addEventListener("alpine:init", () => {
  let nextToastId = 1;
  Alpine.store("toasts", {
    items: [],
    push(message, kind = "success") {
      const id = nextToastId++;
      this.items.push({ id, message, kind });
      setTimeout(() => this.dismiss(id), kind === "error" ? TOAST_MS * 2 : TOAST_MS);
    },
    dismiss(id) {
      this.items = this.items.filter((toast) => toast.id !== id);
    },
  });
  const notify = (message, kind) => Alpine.store("toasts").push(message, kind);

  Alpine.data("experimentsPage", () => ({
    ...formatting,
    items: [],
    total: 0,
    page: 1,
    q: "",
    showArchived: false,
    loading: false,
    loadError: "",
    form: { name: "", description: "" },
    formError: "",
    creating: false,
    pending: null,
    archiving: false,
    busyId: null,
    requestSeq: 0,

    init() {
      this.$watch("q", () => this.load());
      this.load();
    },

    query(page) {
      const params = new URLSearchParams({
        include_archived: String(this.showArchived),
        page: String(page),
        page_size: String(PAGE_SIZE),
      });
      if (this.q.trim()) params.set("q", this.q.trim());
      return `/api/experiments?${params}`;
    },

    async load() {
      // Only the newest request may fill the list, so fast toggling never shows a stale answer.
      const seq = ++this.requestSeq;
      this.loading = true;
      this.loadError = "";
      try {
        const data = await api("GET", this.query(1));
        if (seq !== this.requestSeq) return;
        this.items = data.items;
        this.total = data.total;
        this.page = 1;
      } catch (err) {
        if (seq === this.requestSeq) this.loadError = `Could not load experiments: ${describeError(err)}`;
      } finally {
        if (seq === this.requestSeq) this.loading = false;
      }
    },

    async loadMore() {
      const seq = ++this.requestSeq;
      this.loading = true;
      try {
        const data = await api("GET", this.query(this.page + 1));
        if (seq !== this.requestSeq) return;
        const known = new Set(this.items.map((exp) => exp.id));
        this.items = this.items.concat(data.items.filter((exp) => !known.has(exp.id)));
        this.total = data.total;
        this.page += 1;
      } catch (err) {
        notify(`Could not load more experiments: ${describeError(err)}`, "error");
      } finally {
        if (seq === this.requestSeq) this.loading = false;
      }
    },

    async create() {
      this.formError = "";
      const name = this.form.name.trim();
      if (!name) {
        this.formError = "Give the experiment a name.";
        return;
      }
      this.creating = true;
      try {
        const body = { name };
        if (this.form.description.trim()) body.description = this.form.description.trim();
        const exp = await api("POST", "/api/experiments", body);
        this.items = [exp, ...this.items.filter((item) => item.id !== exp.id)];
        this.total += 1;
        this.form = { name: "", description: "" };
        notify(`Created experiment “${exp.name}”.`);
      } catch (err) {
        this.formError = describeError(err);
      } finally {
        this.creating = false;
      }
    },

    askArchive(exp) {
      this.pending = exp;
      this.$refs.archiveDialog.showModal();
    },

    async confirmArchive() {
      const exp = this.pending;
      if (!exp) return;
      this.archiving = true;
      try {
        const archived = await api("POST", `/api/experiments/${encodeURIComponent(exp.id)}/archive`);
        if (this.showArchived) {
          this.replace(archived);
        } else {
          this.items = this.items.filter((item) => item.id !== exp.id);
          this.total = Math.max(0, this.total - 1);
        }
        notify(`Archived “${exp.name}”. You can unarchive it from “Show archived”.`);
      } catch (err) {
        notify(`Could not archive “${exp.name}”: ${describeError(err)}`, "error");
      } finally {
        this.archiving = false;
        this.$refs.archiveDialog.close();
      }
    },

    async unarchive(exp) {
      this.busyId = exp.id;
      try {
        const restored = await api("POST", `/api/experiments/${encodeURIComponent(exp.id)}/unarchive`);
        this.replace(restored);
        notify(`Restored “${exp.name}” as an active experiment.`);
      } catch (err) {
        notify(`Could not unarchive “${exp.name}”: ${describeError(err)}`, "error");
      } finally {
        this.busyId = null;
      }
    },

    replace(exp) {
      // The archive endpoints may answer without the list's aggregates; keep the ones we have.
      this.items = this.items.map((item) => (item.id === exp.id ? { ...item, ...exp } : item));
    },
  }));

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
