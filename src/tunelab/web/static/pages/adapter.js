// One adapter: its name (renamed in place), activation, export and delete; then three tabs: an overview (base model,
// compatibility, provenance, LoRA, metrics, usage), the versions of its name (timeline, loss chart in uPlot, history,
// roll back, a diff of two versions) and its training configuration with an explanation per parameter.
"use strict";

const TABS = ["overview", "versions", "configuration"];
const SOURCES = { run: "by its training run", registered: "by hand", imported: "from an exported archive" };
const LOSS_SERIES = [
  ["final_loss", "Final loss", "#5b3fd9"],
  ["best_eval_loss", "Best eval loss", "#1c7c4a"],
];

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting, notify } = window.TuneLab;
  const { GOAL_LABELS, nameProblem, configText, breakable, setActive } = window.TuneLab.adapters;

  Alpine.data("adapterPage", () => {
    // uPlot's chart stays outside Alpine's reactive state: it needs no watching and must not be proxied.
    let plot = null;
    let resizer = null;
    return {
      ...formatting,
      configText,
      breakable,
      id: "",
      adapter: null,
      loadError: "",
      tab: "overview",
      tabs: TABS,
      busy: false,
      editing: false,
      draftName: "",
      nameServerError: "",
      savingName: false,
      deleting: false,
      tip: null,
      perf: null,
      perfError: "",
      versions: null,
      versionsError: "",
      diffIds: [],
      diff: null,
      diffError: "",
      rollingBack: false,

      async init() {
        this.id = this.$el.dataset.adapterId;
        const hashed = window.location.hash.slice(1);
        if (TABS.includes(hashed)) this.tab = hashed;
        await this.load();
        if (this.adapter) this.loadPerformance();
        if (this.adapter && this.tab === "versions") this.showVersions();
      },

      destroy() {
        if (plot) plot.destroy();
        if (resizer) resizer.disconnect();
      },

      async load() {
        try {
          this.adapter = await api("GET", `/api/adapters/${encodeURIComponent(this.id)}`);
          document.title = `${this.adapter.name} ${this.adapter.version} · TuneLab`;
        } catch (err) {
          this.loadError = `Could not load the adapter: ${describeError(err)}`;
        }
      },

      /**
       * An element of the page by its data-testid. Not $refs: the parts inside x-if come and go, and a method called
       * from an element inside one sees the refs of the moment it was first asked.
       */
      part(testid) {
        return document.querySelector(`[data-testid="adapter-page"] [data-testid="${testid}"]`);
      },

      // Tabs (the WAI-ARIA tabs pattern: arrows, Home and End move between them)

      selectTab(tab, focus = false) {
        this.tab = tab;
        history.replaceState(null, "", `${window.location.pathname}${window.location.search}#${tab}`);
        if (focus) this.$nextTick(() => document.getElementById(`tab-${tab}`).focus());
        if (tab === "versions") this.showVersions();
      },

      tabKey(event) {
        const index = TABS.indexOf(this.tab);
        const moves = { ArrowRight: index + 1, ArrowLeft: index - 1 + TABS.length, Home: 0, End: TABS.length - 1 };
        if (!(event.key in moves)) return;
        event.preventDefault();
        this.selectTab(TABS[moves[event.key] % TABS.length], true);
      },

      tabLabel(tab) {
        return tab.charAt(0).toUpperCase() + tab.slice(1);
      },

      // The name, edited in place

      get nameProblem() {
        return this.editing ? nameProblem(this.draftName) : "";
      },

      startEdit() {
        this.draftName = this.adapter.name;
        this.nameServerError = "";
        this.editing = true;
        this.$nextTick(() => this.part("name-input").select());
      },

      cancelEdit() {
        this.editing = false;
        this.nameServerError = "";
        this.$nextTick(() => this.part("adapter-name").focus());
      },

      async saveName() {
        if (this.nameProblem || this.savingName) return;
        const name = this.draftName.trim();
        if (name === this.adapter.name) {
          this.cancelEdit();
          return;
        }
        this.savingName = true;
        this.nameServerError = "";
        try {
          const before = this.adapter.name;
          this.adapter = await api("PATCH", `/api/adapters/${encodeURIComponent(this.id)}`, { name });
          document.title = `${this.adapter.name} ${this.adapter.version} · TuneLab`;
          notify(`Renamed “${before}” to “${this.adapter.name}”.`);
          this.cancelEdit();
          this.refreshVersions();
        } catch (err) {
          this.nameServerError = describeError(err);
        } finally {
          this.savingName = false;
        }
      },

      // Activation and delete

      async toggle(event) {
        this.busy = true;
        try {
          this.adapter = await setActive(this.adapter, event.target.checked);
          notify(`${this.adapter.name} ${this.adapter.version} is ${this.adapter.active ? "active" : "inactive"}.`);
          this.refreshVersions();
        } catch (err) {
          event.target.checked = this.adapter.active;
          notify(err.message, "error");
        } finally {
          this.busy = false;
        }
      },

      async confirmDelete() {
        this.deleting = true;
        try {
          await api("DELETE", `/api/adapters/${encodeURIComponent(this.id)}`);
          window.location.assign("/adapters");
        } catch (err) {
          notify(`Could not delete the adapter: ${describeError(err)}`, "error");
          this.deleting = false;
          this.part("delete-dialog").close();
        }
      },

      // Overview

      /** Generations and ratings, beside the base model's ratings on the same prompts. */
      async loadPerformance() {
        try {
          this.perf = await api("GET", `/api/adapters/${encodeURIComponent(this.id)}/performance`);
        } catch (err) {
          this.perfError = `Could not load the ratings: ${describeError(err)}`;
        }
      },

      ratingText(summary, fallback = null) {
        if (!summary) return fallback == null ? "No ratings yet" : `${format.number(fallback)} / 5`;
        if (!summary.count) return "No ratings yet";
        const count = `${summary.count} rating${summary.count === 1 ? "" : "s"}`;
        const interval = summary.ci ? `95% CI ${format.number(summary.ci[0])}–${format.number(summary.ci[1])}, ` : "";
        return `${format.number(summary.average)} / 5 (${interval}${count})`;
      },

      differenceText(difference) {
        if (!difference || difference.p_value == null) return "";
        const verdict = difference.significant ? "a significant difference" : "no significant difference";
        return `· Mann–Whitney p = ${format.number(difference.p_value)}: ${verdict}`;
      },

      share(part, whole) {
        return whole > 0 ? Math.round((100 * part) / whole) : 0;
      },

      get metricEntries() {
        return Object.entries(this.adapter.metrics || {});
      },

      // Versions

      async showVersions() {
        if (!this.versions) await this.refreshVersions();
        await this.$nextTick();
        this.drawChart();
      },

      async refreshVersions() {
        if (!this.adapter || (!this.versions && this.tab !== "versions")) return;
        this.versionsError = "";
        try {
          this.versions = await api("GET", `/api/adapters/versions?name=${encodeURIComponent(this.adapter.name)}`);
          const known = new Set(this.versions.versions.map((v) => v.id));
          this.diffIds = this.diffIds.filter((id) => known.has(id));
          if (this.diff && this.diffIds.length < 2) this.diff = null;
          await this.$nextTick();
          this.drawChart();
        } catch (err) {
          this.versionsError = `Could not load the versions: ${describeError(err)}`;
        }
      },

      get rollBackVersion() {
        if (!this.versions || !this.versions.roll_back_to) return null;
        return this.versions.versions.find((v) => v.id === this.versions.roll_back_to) || null;
      },

      async rollBack() {
        this.rollingBack = true;
        try {
          const restored = await api("POST", "/api/adapters/rollback", { name: this.adapter.name });
          notify(`Rolled back: ${restored.name} ${restored.version} is active again.`);
          if (restored.id === this.id) this.adapter = restored;
          else await this.load();
          await this.refreshVersions();
        } catch (err) {
          notify(`Could not roll back: ${describeError(err)}`, "error");
        } finally {
          this.rollingBack = false;
        }
      },

      periodText(period) {
        const start = format.date(period.start);
        return period.end ? `${start} – ${format.date(period.end)}` : `since ${start}`;
      },

      eventText(event) {
        const d = event.detail || {};
        switch (event.event) {
          case "registered":
            return `${event.version} registered${SOURCES[d.source] ? ` ${SOURCES[d.source]}` : ""}`;
          case "activated":
            return `${event.version} activated`;
          case "deactivated":
            if (d.replaced_by_version) return `${event.version} deactivated: ${d.replaced_by_version} replaced it`;
            return `${event.version} deactivated${d.reason ? `: ${d.reason}` : ""}`;
          case "renamed":
            return `${event.version} renamed from “${d.from}” to “${d.to}”`;
          case "deleted":
            return `${event.version} deleted`;
          default:
            return `${event.version} ${event.event}`;
        }
      },

      hasLosses() {
        const entries = this.versions ? this.versions.versions : [];
        return entries.some((v) => v.final_loss !== null || v.best_eval_loss !== null);
      },

      /** Final and best eval loss across the versions, oldest first; the x axis counts versions and names them. */
      drawChart() {
        const box = this.part("version-chart");
        if (!box || !this.versions || !this.hasLosses() || box.clientWidth === 0) return;
        const entries = this.versions.versions;
        const data = [entries.map((_, index) => index), ...LOSS_SERIES.map(([key]) => entries.map((v) => v[key]))];
        if (plot) plot.destroy();
        box.textContent = "";
        plot = new uPlot({
          width: box.clientWidth,
          height: 220,
          scales: { x: { time: false, range: () => [-0.5, entries.length - 0.5] } },
          axes: [
            { label: "version", splits: () => entries.map((_, index) => index),
              values: (plot, splits) => splits.map((i) => (entries[i] ? entries[i].version : "")) },
            { values: (plot, splits) => splits.map((v) => format.number(v)), size: 60 },
          ],
          series: [
            { label: "version", value: (plot, i) => (i == null || !entries[i] ? "—" : entries[i].version) },
            ...LOSS_SERIES.map(([, label, stroke]) => ({ label, stroke, width: 2, spanGaps: true,
              points: { show: true, size: 7 }, value: (plot, v) => format.number(v) })),
          ],
        }, data, box);
        if (!resizer) {
          resizer = new ResizeObserver(() => {
            if (plot && box.clientWidth > 0) plot.setSize({ width: box.clientWidth, height: 220 });
          });
          resizer.observe(box);
        }
      },

      // Diff of two versions

      toggleDiff(id) {
        // At most two: ticking a third drops the one ticked first.
        const kept = this.diffIds.filter((d) => d !== id);
        this.diffIds = kept.length < this.diffIds.length ? kept : [...kept, id].slice(-2);
        this.diff = null;
        this.diffError = "";
      },

      async showDiff() {
        const order = this.versions.versions.map((v) => v.id);
        const [a, b] = [...this.diffIds].sort((x, y) => order.indexOf(x) - order.indexOf(y)); // older first
        this.diffError = "";
        try {
          this.diff = await api("GET", `/api/adapters/diff?a=${encodeURIComponent(a)}&b=${encodeURIComponent(b)}`);
        } catch (err) {
          this.diffError = `Could not compare the versions: ${describeError(err)}`;
        }
      },

      deltaText(delta) {
        if (delta === null || delta === undefined) return "—";
        return `${delta > 0 ? "+" : ""}${format.number(delta)}`;
      },

      betterText(metric) {
        if (!metric.better) return "";
        return `${this.diff[metric.better].version} is better`;
      },

      goalLabel(goal) {
        return GOAL_LABELS[goal] || GOAL_LABELS.none;
      },

      // Configuration: a tooltip per parameter, on hover and on focus

      tipId(groupIndex, entryIndex) {
        return `tip-${groupIndex}-${entryIndex}`;
      },
    };
  });
});
