// One run: its terminal (history, then live over server-sent events), its charts (uPlot, refreshed while it
// runs), its config, inputs and adapter.
"use strict";

const TAIL_BYTES = 256 * 1024; // the page opens at the end of the log; older output on request
const CHART_KEYS = ["loss", "eval_loss", "learning_rate"];
const CHART_MS = 2000;

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting, notify } = window.TuneLab;

  Alpine.data("runPage", () => ({
    ...formatting,
    fmtScalar: format.scalar,
    id: "",
    run: null,
    experimentName: "",
    adapter: null,
    loadError: "",
    cancelling: false,
    logStart: 0,
    logEnd: 0,
    loadingEarlier: false,
    series: {},
    chartKeys: [],
    term: null,
    source: null,
    plots: {},
    chartTimer: null,

    get ended() {
      return Boolean(this.run) && ["completed", "failed", "cancelled"].includes(this.run.status);
    },

    async init() {
      this.id = this.$el.dataset.runId;
      await this.load();
      if (!this.run) return;
      await this.$nextTick();
      if (!this.run.external) await this.openTerminal();
      this.refreshCharts();
    },

    destroy() {
      if (this.source) this.source.close();
      clearTimeout(this.chartTimer);
    },

    async load() {
      try {
        this.run = await api("GET", `/api/runs/${encodeURIComponent(this.id)}`);
        document.title = `${this.run.name} · TuneLab`;
        const exp = await api("GET", `/api/experiments/${encodeURIComponent(this.run.experiment_id)}`);
        this.experimentName = exp.name;
        if (this.run.adapter_id && !this.adapter) {
          this.adapter = await api("GET", `/api/adapters/${encodeURIComponent(this.run.adapter_id)}`);
        }
      } catch (err) {
        this.loadError = `Could not load the run: ${describeError(err)}`;
      }
    },

    // The terminal

    async openTerminal() {
      this.term = new Terminal({ convertEol: false, scrollback: 100000, fontSize: 13, disableStdin: true,
        theme: { background: "#14161a" } });
      const fit = new FitAddon.FitAddon();
      this.term.loadAddon(fit);
      this.term.open(this.$refs.terminal);
      fit.fit();
      // Scrolled to the top of what is shown while earlier output exists: fetch it (the button does the same).
      const atTop = () => this.term.buffer.active.viewportY === 0;
      const earlier = () => {
        if (atTop() && this.logStart > 0 && !this.loadingEarlier) this.loadEarlier();
      };
      this.term.onScroll(earlier);
      // A wheel turned up at the top scrolls nothing, so onScroll is silent: ask on the wheel too (capture: xterm.js
      // keeps wheel events to itself).
      this.$refs.terminal.addEventListener("wheel", (event) => { if (event.deltaY < 0) earlier(); },
        { passive: true, capture: true });
      window.addEventListener("resize", () => fit.fit());
      const response = await fetch(`/api/runs/${encodeURIComponent(this.id)}/logs?tail=${TAIL_BYTES}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      this.logStart = Number(response.headers.get("X-Log-Start") || 0);
      this.logEnd = Number(response.headers.get("X-Log-Offset") || 0);
      this.term.write(bytes);
      this.follow();
    },

    /** Live bytes from where the history ended; the browser resumes from the last event id on its own. */
    follow() {
      const url = `/api/runs/${encodeURIComponent(this.id)}/logs/stream?offset=${this.logEnd}`;
      this.source = new EventSource(url);
      this.source.onmessage = (event) => {
        const chunk = Uint8Array.from(atob(event.data), (c) => c.charCodeAt(0));
        this.term.write(chunk);
        this.logEnd = Number(event.lastEventId);
      };
      this.source.addEventListener("end", async () => {
        this.source.close();
        this.source = null;
        await this.load();
        this.refreshCharts();
      });
    },

    /** xterm.js cannot put lines above those it shows: the earlier part and what is shown are written again. */
    async loadEarlier() {
      this.loadingEarlier = true;
      const start = Math.max(0, this.logStart - 4 * TAIL_BYTES);
      const response = await fetch(`/api/runs/${encodeURIComponent(this.id)}/logs?offset=${start}&limit=${this.logEnd - start}`);
      const bytes = new Uint8Array(await response.arrayBuffer());
      // Keep the reader where they were: below the earlier part, whose lines are counted.
      const added = bytes.subarray(0, this.logStart - start).reduce((n, b) => n + (b === 10 ? 1 : 0), 0);
      this.term.reset();
      this.logStart = start;
      this.term.write(bytes, () => {
        this.term.scrollToLine(added);
        this.loadingEarlier = false;
      });
    },

    async cancel() {
      this.cancelling = true;
      try {
        this.run = await api("POST", `/api/runs/${encodeURIComponent(this.id)}/cancel`);
        notify(`Run “${this.run.name}” is ${this.run.status}.`);
      } catch (err) {
        notify(`Could not cancel the run: ${describeError(err)}`, "error");
      } finally {
        this.cancelling = false;
      }
    },

    // Charts

    async refreshCharts() {
      clearTimeout(this.chartTimer);
      try {
        const metrics = await api("GET", `/api/runs/${encodeURIComponent(this.id)}/metrics?max_points=1000`);
        this.series = metrics.series;
        const keys = CHART_KEYS.filter((key) => (metrics.series[key] || []).length > 0);
        // Other losses and DPO rewards too, once they are curves (a summary's single point is not).
        const other = Object.keys(metrics.series).filter((k) => !CHART_KEYS.includes(k) && /loss|reward|accuracy|margin/.test(k)
          && metrics.series[k].length > 1);
        this.chartKeys = [...keys, ...other.sort()];
        await this.$nextTick();
        for (const key of this.chartKeys) this.draw(key, metrics.series[key]);
      } catch (err) {
        // A chart that could not refresh keeps what it showed; the next refresh tries again.
      }
      if (!this.ended) this.chartTimer = setTimeout(() => this.refreshCharts(), CHART_MS);
    },

    draw(key, points) {
      const box = this.$root.querySelector(`[data-metric="${CSS.escape(key)}"] .chart-body`);
      if (!box) return;
      const data = [points.map((p) => p.step), points.map((p) => p.value)];
      const width = Math.max(240, box.clientWidth || 300);
      if (this.plots[key] && this.plots[key].root.isConnected) {
        this.plots[key].setData(data);
        return;
      }
      box.textContent = "";
      this.plots[key] = new uPlot({
        width, height: 180,
        scales: { x: { time: false } },
        axes: [{ label: "step" }, { values: (plot, splits) => splits.map((v) => format.number(v)), size: 60 }],
        series: [{ label: "step" }, { label: key, stroke: "#4f7cff", width: 2, points: { show: points.length < 50 } }],
        legend: { show: true },
      }, data, box);
    },
  }));
});
