// The experiments list: search, filter, sort and pages kept in the address bar; create, archive, unarchive.
"use strict";

/** The API's own sort values, in the order the menu offers them. */
const SORTS = [
  ["-created_at", "Newest first"],
  ["created_at", "Oldest first"],
  ["-updated_at", "Recently updated"],
  ["updated_at", "Least recently updated"],
  ["name", "Name A–Z"],
  ["-name", "Name Z–A"],
  ["status", "Status A–Z"],
  ["-status", "Status Z–A"],
];
const STATUSES = ["draft", "running", "completed", "failed", "cancelled", "archived"];
const PAGE_SIZES = [10, 25, 50, 100];

/** The view a list shows; the URL holds only what differs from it, so a plain /experiments stays plain. */
const DEFAULT_VIEW = { q: "", status: "", include_archived: false, sort: "-created_at", page: 1, page_size: 25 };

/** The view a query string asks for; anything unknown or malformed falls back to the default. */
function viewFromQuery(search) {
  const params = new URLSearchParams(search);
  const page = Number.parseInt(params.get("page"), 10);
  const size = Number.parseInt(params.get("page_size"), 10);
  const sort = params.get("sort");
  const status = params.get("status");
  return {
    q: (params.get("q") || "").slice(0, 200),
    status: STATUSES.includes(status) ? status : DEFAULT_VIEW.status,
    include_archived: params.get("include_archived") === "true",
    sort: SORTS.some(([value]) => value === sort) ? sort : DEFAULT_VIEW.sort,
    page: page >= 1 ? page : DEFAULT_VIEW.page,
    page_size: PAGE_SIZES.includes(size) ? size : DEFAULT_VIEW.page_size,
  };
}

/** This page's address for a view. */
function urlForView(view) {
  const params = new URLSearchParams();
  for (const [key, fallback] of Object.entries(DEFAULT_VIEW)) {
    const value = key === "q" ? view.q.trim() : view[key];
    if (value !== fallback) params.set(key, String(value));
  }
  const query = params.toString();
  return `${window.location.pathname}${query ? `?${query}` : ""}`;
}

/** The API query for a view: the same names, with every value spelled out. */
function apiQueryForView(view) {
  const params = new URLSearchParams({
    include_archived: String(view.include_archived),
    sort: view.sort,
    page: String(view.page),
    page_size: String(view.page_size),
  });
  if (view.q.trim()) params.set("q", view.q.trim());
  if (view.status) params.set("status", view.status);
  return params;
}

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting, notify } = window.TuneLab;

  Alpine.data("experimentsPage", () => ({
    ...formatting,
    sorts: SORTS,
    statuses: STATUSES,
    pageSizes: PAGE_SIZES,
    ...DEFAULT_VIEW,
    items: [],
    total: 0,
    loaded: false,
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
      Object.assign(this, viewFromQuery(window.location.search));
      // Back and forward move between views this page pushed; show the one the address now names.
      window.addEventListener("popstate", () => {
        Object.assign(this, viewFromQuery(window.location.search));
        this.load();
      });
      this.load();
    },

    get view() {
      const view = {};
      for (const key of Object.keys(DEFAULT_VIEW)) view[key] = this[key];
      return view;
    },

    get pageCount() {
      return Math.max(1, Math.ceil(this.total / this.page_size));
    },

    get firstShown() {
      return this.items.length ? (this.page - 1) * this.page_size + 1 : 0;
    },

    get filtered() {
      return Boolean(this.q.trim() || this.status);
    },

    statusOptionLabel(status) {
      return status === "draft" ? "Draft (pending)" : this.statusLabel(status);
    },

    /**
     * Change the view and load it. Each change is its own history entry so Back undoes it; typing a search
     * replaces the entry instead, or every keystroke would be one.
     */
    show(changes, { replace = false } = {}) {
      this.formError = "";
      Object.assign(this, { page: 1 }, changes);
      const url = urlForView(this.view);
      if (url !== `${window.location.pathname}${window.location.search}`) {
        history[replace ? "replaceState" : "pushState"](null, "", url);
      }
      return this.load();
    },

    search() {
      this.show({ q: this.q }, { replace: true });
    },

    clearFilters() {
      this.show({ q: "", status: "" });
    },

    goToPage(page) {
      this.show({ page: Math.min(Math.max(1, page), this.pageCount) });
      this.$nextTick(() => this.$refs.listHeading.scrollIntoView({ block: "start" }));
    },

    async load() {
      // Only the newest request may fill the list, so fast clicking never shows a stale answer.
      const seq = ++this.requestSeq;
      this.loading = true;
      this.loadError = "";
      try {
        const data = await api("GET", `/api/experiments?${apiQueryForView(this.view)}`);
        if (seq !== this.requestSeq) return;
        // A shared link or a shrunk list can name a page past the end: show the last page there is.
        if (data.items.length === 0 && data.total > 0 && this.page > 1) {
          this.page = Math.ceil(data.total / this.page_size);
          history.replaceState(null, "", urlForView(this.view));
          return this.load();
        }
        this.items = data.items;
        this.total = data.total;
        this.loaded = true;
      } catch (err) {
        if (seq === this.requestSeq) this.loadError = `Could not load experiments: ${describeError(err)}`;
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
        // Shown on top of the page the user is on, whatever its sort: it is what they just made.
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
      this.formError = "";
      this.pending = exp;
      this.$refs.archiveDialog.showModal();
    },

    async confirmArchive() {
      const exp = this.pending;
      if (!exp) return;
      this.archiving = true;
      try {
        const archived = await api("POST", `/api/experiments/${encodeURIComponent(exp.id)}/archive`);
        if (this.include_archived) {
          this.replace(archived);
        } else {
          this.items = this.items.filter((item) => item.id !== exp.id);
          this.total = Math.max(0, this.total - 1);
          // The next page's first experiment moves up into the gap.
          if (this.total >= this.page * this.page_size || this.items.length === 0) this.load();
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
      this.formError = "";
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
});
