// The A/B tests list with each test's progress and verdict, and the leaderboard of the current model. It also holds
// what the three A/B pages share (`TuneLab.abtests`): how a side and a verdict are said.
"use strict";

(() => {
  const VERDICTS = { a_better: "A is better", b_better: "B is better", undecided: "Undecided" };

  /** A side of a test: the adapter's "name version", or the base model (null). */
  function sideName(adapter) {
    return adapter ? `${adapter.name} ${adapter.version}` : "Base model";
  }

  /** The verdict in words, naming the side that won. */
  function verdictText(test, results) {
    if (results.verdict === "a_better") return `A (${sideName(test.adapter_a)}) is better`;
    if (results.verdict === "b_better") return `B (${sideName(test.adapter_b)}) is better`;
    return results.decisive === 0 && results.ties === 0 ? "No votes yet" : "Undecided so far";
  }

  function percent(part, whole) {
    return whole > 0 ? Math.round((100 * part) / whole) : 0;
  }

  window.TuneLab.abtests = { VERDICTS, sideName, verdictText, percent };
})();

const ABTESTS_PAGE = 50;
const ABTESTS_POLL_MS = 2000;
const STATUS_TEXT = { generating: "Making clips", voting: "Voting", completed: "Completed", failed: "Failed" };

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting } = window.TuneLab;
  const { sideName, verdictText, percent } = window.TuneLab.abtests;

  Alpine.data("abtestsPage", () => {
    let timer = null;
    return {
      ...formatting,
      sideName,
      verdictText,
      percent,
      tests: [],
      total: 0,
      limit: ABTESTS_PAGE,
      loaded: false,
      loadError: "",
      results: {}, // test id → results: the list's summaries carry no verdict (see the report)
      polling: false,
      board: null,
      boardError: "",
      models: [],

      async init() {
        await Promise.all([this.load(), this.loadBoard()]);
      },

      destroy() {
        clearTimeout(timer);
      },

      async load() {
        try {
          const data = await api("GET", `/api/abtests?page_size=${this.limit}`);
          this.tests = data.items;
          this.total = data.total;
          this.loadError = "";
          await this.loadResults();
        } catch (err) {
          this.loadError = `Could not load the A/B tests: ${describeError(err)}`;
        } finally {
          this.loaded = true;
        }
        clearTimeout(timer);
        this.polling = this.tests.some((t) => t.status === "generating");
        if (this.polling) timer = setTimeout(() => this.load(), ABTESTS_POLL_MS);
      },

      /** Each test's results, for its verdict: one request per test whose votes changed since the last look. */
      async loadResults() {
        const stale = this.tests.filter((t) => !this.results[t.id] || this.results[t.id].votes !== t.votes);
        await Promise.all(stale.map(async (t) => {
          try {
            const full = await api("GET", `/api/abtests/${encodeURIComponent(t.id)}`);
            this.results[t.id] = { ...full.results, votes: t.votes };
          } catch (err) {
            // The row still shows its progress; the verdict waits for the next look.
          }
        }));
      },

      async loadBoard() {
        try {
          const [board, models] = await Promise.all([api("GET", "/api/leaderboard"), api("GET", "/api/models")]);
          this.models = models.items;
          this.board = board;
        } catch (err) {
          this.boardError = err.code === "no_current_model"
            ? "No base model is current: choose one in Settings to see its leaderboard."
            : `Could not load the leaderboard: ${describeError(err)}`;
        }
      },

      modelName(modelId) {
        const found = this.models.find((m) => m.id === modelId);
        return found ? found.display_name : modelId;
      },

      showMore() {
        this.limit += ABTESTS_PAGE;
        this.load();
      },

      statusText(status) {
        return STATUS_TEXT[status] || status;
      },

      statusClass(status) {
        return { generating: "badge-running", voting: "badge-cancelled", completed: "badge-completed",
          failed: "badge-failed" }[status] || "";
      },
    };
  });
});
