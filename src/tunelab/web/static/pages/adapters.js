// The adapter list: search, "active only" and "group by name" kept in the address bar; activate, rename, delete,
// pick adapters to compare. It also holds what the three adapter pages share (`TuneLab.adapters`): the name rule,
// configuration values as text and activation, so the dialog here and the inline edit of the adapter page say the
// same things.
"use strict";

(() => {
  const NAME_MAX = 100; // the API's limit, counted as it counts: in characters (code points) once trimmed
  const GOAL_LABELS = { min: "lower is better", max: "higher is better", none: "not ranked" };

  /** Why `name` cannot be saved, or "" when it can. */
  function nameProblem(name) {
    const trimmed = (name || "").trim();
    if (!trimmed) return "The name cannot be empty.";
    const length = [...trimmed].length;
    if (length > NAME_MAX) return `The name can be at most ${NAME_MAX} characters; this one has ${length}.`;
    return "";
  }

  /** A training config value as the server's Configuration tab shows one: 1e-4, Yes/No, a, b, c, Not set. */
  function configText(value) {
    if (value === null || value === undefined || value === "" || (Array.isArray(value) && value.length === 0)) {
      return "Not set";
    }
    if (typeof value === "boolean") return value ? "Yes" : "No";
    if (typeof value === "number") return window.TuneLab.format.number(value);
    if (Array.isArray(value)) return value.map(configText).join(", ");
    if (typeof value === "object") return Object.entries(value).map(([k, v]) => `${k}: ${configText(v)}`).join(", ");
    return String(value);
  }

  /** A dotted config key that may wrap after each dot (a zero-width space), not inside a word. */
  function breakable(key) {
    return key.replaceAll(".", ".\u200b");
  }

  /** Activate or deactivate; resolves to the adapter's detail or throws an Error whose message says why not. */
  async function setActive(adapter, active) {
    const { api, describeError } = window.TuneLab;
    const action = active ? "activate" : "deactivate";
    try {
      return await api("POST", `/api/adapters/${encodeURIComponent(adapter.id)}/${action}`);
    } catch (err) {
      const incompatible = err.code === "adapter_incompatible" && err.details.reason;
      throw new Error(`Could not ${action} ${adapter.name} ${adapter.version}: ${incompatible || describeError(err)}`);
    }
  }

  window.TuneLab.adapters = { NAME_MAX, GOAL_LABELS, nameProblem, configText, breakable, setActive };
})();

/** The view a list shows; the URL holds only what differs from it. */
const ADAPTERS_VIEW = { q: "", active: false, group_by_name: false };
const ADAPTERS_PAGE_SIZE = 100;
const COMPARE_MAX = 10;
const SAVED_VIEW = "tunelab.adapters.view"; // this browser tab's last list query

function adaptersViewFromQuery(search) {
  const params = new URLSearchParams(search);
  return {
    q: (params.get("q") || "").slice(0, 200),
    active: params.get("active") === "true",
    group_by_name: params.get("group_by_name") === "true",
  };
}

function adaptersUrlForView(view) {
  const params = new URLSearchParams();
  if (view.q.trim()) params.set("q", view.q.trim());
  if (view.active) params.set("active", "true");
  if (view.group_by_name) params.set("group_by_name", "true");
  const query = params.toString();
  return `${window.location.pathname}${query ? `?${query}` : ""}`;
}

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting, notify } = window.TuneLab;
  const { nameProblem } = window.TuneLab.adapters;

  Alpine.data("adaptersPage", () => ({
    ...formatting,
    ...ADAPTERS_VIEW,
    items: [], // adapters, or {name, versions} groups when they were loaded grouped
    grouped: false, // how `items` were loaded: the checkbox changes before the new answer comes
    total: 0,
    page: 1,
    loaded: false,
    loading: false,
    loadError: "",
    currentModel: null,
    busyId: null,
    selected: [],
    compareMax: COMPARE_MAX,
    rename: { adapter: null, name: "", serverError: "", saving: false },
    pending: null,
    deleting: false,
    requestSeq: 0,

    init() {
      let search = window.location.search;
      // The top bar's Adapters link is a plain /adapters: it opens the list as this browser tab last left it.
      const saved = sessionStorage.getItem(SAVED_VIEW);
      if (!search && saved) {
        history.replaceState(null, "", `${window.location.pathname}${saved}`);
        search = saved;
      }
      Object.assign(this, adaptersViewFromQuery(search));
      sessionStorage.setItem(SAVED_VIEW, new URL(adaptersUrlForView(this.view), window.location.href).search);
      this.load();
      this.loadCurrentModel();
    },

    get view() {
      return { q: this.q, active: this.active, group_by_name: this.group_by_name };
    },

    get filtered() {
      return Boolean(this.q.trim() || this.active);
    },

    /** Every adapter shown, grouped or not. */
    get adapters() {
      return this.grouped ? this.items.flatMap((group) => group.versions) : this.items;
    },

    /** Rows under group headings; one unnamed group when the list is flat. */
    get groups() {
      return this.grouped ? this.items : [{ name: "", versions: this.items }];
    },

    get incompatibleShown() {
      return this.adapters.some((adapter) => !adapter.compatible);
    },

    /** The filters live in the address, replaced in place: coming back from an adapter shows the same list. */
    show(changes) {
      Object.assign(this, changes);
      history.replaceState(null, "", adaptersUrlForView(this.view));
      sessionStorage.setItem(SAVED_VIEW, window.location.search);
      return this.load();
    },

    clearFilters() {
      this.show({ q: "", active: false });
    },

    apiQuery(page) {
      const params = new URLSearchParams({ group_by_name: String(this.group_by_name), page: String(page),
        page_size: String(ADAPTERS_PAGE_SIZE) });
      if (this.active) params.set("active", "true");
      if (this.q.trim()) params.set("q", this.q.trim());
      return params;
    },

    /** The first page again (after any change, so that a version turned off by another shows it at once). */
    async load() {
      const seq = ++this.requestSeq;
      this.loading = true;
      this.loadError = "";
      try {
        const pages = Math.max(1, this.page);
        let items = [];
        let total = 0;
        for (let page = 1; page <= pages; page += 1) {
          const data = await api("GET", `/api/adapters?${this.apiQuery(page)}`);
          items = items.concat(data.items);
          total = data.total;
          if (data.items.length < ADAPTERS_PAGE_SIZE) break;
        }
        if (seq !== this.requestSeq) return;
        this.grouped = this.group_by_name;
        this.items = items;
        this.total = total;
        this.loaded = true;
        const shown = new Set(this.adapters.map((adapter) => adapter.id));
        this.selected = this.selected.filter((id) => shown.has(id));
      } catch (err) {
        if (seq === this.requestSeq) this.loadError = `Could not load adapters: ${describeError(err)}`;
      } finally {
        if (seq === this.requestSeq) this.loading = false;
      }
    },

    async loadMore() {
      this.page += 1;
      await this.load();
    },

    async loadCurrentModel() {
      try {
        const models = await api("GET", "/api/models");
        this.currentModel = models.items.find((model) => model.current) || null;
      } catch (err) {
        // Only the hint about other models needs it; the list works without.
      }
    },

    requires(adapter) {
      const model = adapter.base_model ? adapter.base_model.display_name : adapter.base_model_id || "another model";
      return `Requires ${model}`;
    },

    switchTitle(adapter) {
      if (adapter.compatible || adapter.active) return "";
      const current = this.currentModel ? this.currentModel.display_name : "no model";
      return `${this.requires(adapter)}; the current model is ${current}. Change the model in Settings to use it.`;
    },

    async toggle(adapter, event) {
      const wanted = event.target.checked;
      this.busyId = adapter.id;
      try {
        const detail = await window.TuneLab.adapters.setActive(adapter, wanted);
        adapter.active = detail.active;
        notify(`${adapter.name} ${adapter.version} is ${detail.active ? "active" : "inactive"}.`);
        await this.load(); // activating one version turns the name's other active version off
      } catch (err) {
        event.target.checked = adapter.active;
        notify(err.message, "error");
      } finally {
        this.busyId = null;
      }
    },

    // Compare

    compareUrl() {
      return `/adapters/compare?ids=${this.selected.map(encodeURIComponent).join(",")}`;
    },

    /** The A/B test form with the two ticked adapters as side A and side B, in the order they were ticked. */
    quickAbUrl() {
      const [a, b] = this.selected;
      return `/abtests/new?a=${encodeURIComponent(a || "")}&b=${encodeURIComponent(b || "")}`;
    },

    // Rename

    get renameProblem() {
      return nameProblem(this.rename.name);
    },

    askRename(adapter) {
      this.rename = { adapter, name: adapter.name, serverError: "", saving: false };
      this.$refs.renameDialog.showModal();
      this.$nextTick(() => this.$refs.renameInput.select());
    },

    async saveRename() {
      const { adapter } = this.rename;
      if (!adapter || this.renameProblem || this.rename.saving) return;
      const name = this.rename.name.trim();
      if (name === adapter.name) {
        this.$refs.renameDialog.close();
        return;
      }
      this.rename.saving = true;
      this.rename.serverError = "";
      try {
        await api("PATCH", `/api/adapters/${encodeURIComponent(adapter.id)}`, { name });
        this.$refs.renameDialog.close();
        notify(`Renamed “${adapter.name}” ${adapter.version} to “${name}”.`);
        await this.load();
      } catch (err) {
        this.rename.serverError = describeError(err);
      } finally {
        this.rename.saving = false;
      }
    },

    // Delete

    askDelete(adapter) {
      this.pending = adapter;
      this.$refs.deleteDialog.showModal();
    },

    async confirmDelete() {
      const adapter = this.pending;
      if (!adapter) return;
      this.deleting = true;
      try {
        await api("DELETE", `/api/adapters/${encodeURIComponent(adapter.id)}`);
        notify(`Deleted ${adapter.name} ${adapter.version}. Its files are still on disk.`);
        await this.load();
      } catch (err) {
        notify(`Could not delete ${adapter.name} ${adapter.version}: ${describeError(err)}`, "error");
      } finally {
        this.deleting = false;
        this.$refs.deleteDialog.close();
      }
    },
  }));
});
