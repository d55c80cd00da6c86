// One A/B test: the clips being made (polled until every pair is made), the blind vote one pair at a time (both
// clips must be heard to their end before the vote buttons unlock; 1, 2 and T vote, N goes on), the reveal of which
// side played first after each vote, the results with their two intervals around 50%, and a preference dataset.
"use strict";

const ABTEST_POLL_MS = 1500;
const CHOICES = { first: "First", second: "Second", tie: "Tie" };
const KEYS = { 1: "first", 2: "second", t: "tie", T: "tie" };

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting } = window.TuneLab;
  const { sideName, percent } = window.TuneLab.abtests;

  Alpine.data("abtestPage", () => {
    let timer = null;
    return {
      ...formatting,
      sideName,
      percent,
      id: "",
      test: null,
      loadError: "",
      pairId: null, // the pair being voted on; it stays until "Next", so the reveal can show
      heard: { first: false, second: false },
      nudge: false,
      revealed: null,
      voting: false,
      voteError: "",
      making: false,
      made: null,
      datasetError: "",

      async init() {
        this.id = this.$el.dataset.abtestId;
        await this.load();
      },

      destroy() {
        clearTimeout(timer);
      },

      async load() {
        try {
          this.test = await api("GET", `/api/abtests/${encodeURIComponent(this.id)}`);
          document.title = `${this.test.name} · TuneLab`;
          this.loadError = "";
          if (!this.pairId && !this.revealed) this.pickPair();
        } catch (err) {
          this.loadError = `Could not load the test: ${describeError(err)}`;
        }
        clearTimeout(timer);
        if (this.test && this.test.status === "generating") timer = setTimeout(() => this.load(), ABTEST_POLL_MS);
      },

      // The pair being voted on

      get currentPair() {
        return this.test && this.pairId ? this.test.pairs.find((p) => p.id === this.pairId) || null : null;
      },

      get waiting() {
        return this.test.pairs.filter((p) => p.vote === null && p.status === "ready");
      },

      get hasNext() {
        return this.waiting.some((p) => p.id !== this.pairId);
      },

      pickPair() {
        const next = this.waiting.find((p) => p.id !== this.pairId) || null;
        this.pairId = next ? next.id : null;
        this.heard = { first: false, second: false };
        this.nudge = false;
        this.voteError = "";
      },

      next() {
        this.revealed = null;
        this.pickPair();
      },

      hear(side) {
        this.heard[side] = true;
        this.nudge = false;
      },

      get canVote() {
        return Boolean(this.currentPair) && this.heard.first && this.heard.second && !this.voting && !this.revealed;
      },

      get voteHint() {
        if (this.heard.first && this.heard.second) return "Which did you prefer?";
        const left = ["first", "second"].filter((side) => !this.heard[side]);
        return `Play the ${left.join(" and the ")} clip to the end to vote.`;
      },

      get idleTitle() {
        if (this.test.status === "generating") return "Making the clips…";
        if (this.test.pairs_ready === 0) return "No pair could be made.";
        return "Every pair has a vote.";
      },

      get idleText() {
        if (this.test.status === "generating") return "The first pair appears here as soon as both of its clips are made.";
        if (this.test.pairs_ready === 0) return "See the error above; start a new test once the cause is fixed.";
        return "The results below are final for this test; make a preference dataset from them to train on.";
      },

      shortcut(event) {
        if (event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
        if (event.target.closest("input, textarea, select, [contenteditable]")) return;
        if (this.revealed && (event.key === "n" || event.key === "N")) {
          event.preventDefault();
          this.next();
          return;
        }
        const choice = KEYS[event.key];
        if (!choice || !this.currentPair || this.revealed) return;
        event.preventDefault();
        if (this.canVote) this.vote(choice);
        else this.nudge = true;
      },

      async vote(choice) {
        if (!this.canVote) return;
        const pair = this.currentPair;
        this.voting = true;
        this.voteError = "";
        try {
          const answer = await api("POST", `/api/abtests/${encodeURIComponent(this.id)}/votes`,
            { pair_id: pair.id, choice });
          const index = this.test.pairs.findIndex((p) => p.id === pair.id);
          const wasVoted = this.test.pairs[index].vote !== null;
          this.test.pairs[index] = answer.pair;
          this.test.results = answer.results;
          if (!wasVoted) this.test.votes += 1;
          if (this.test.status === "voting" && this.waiting.length === 0) this.test.status = "completed";
          this.revealed = { choice, first_is: answer.pair.first_is };
          this.$nextTick(() => {
            if (this.$refs.nextButton) this.$refs.nextButton.focus();
          });
        } catch (err) {
          this.voteError = `The vote was not saved: ${describeError(err)}`;
        } finally {
          this.voting = false;
        }
      },

      get votedPairs() {
        return this.test.pairs.filter((p) => p.vote !== null);
      },

      get failedPairs() {
        return this.test.pairs.filter((p) => p.status === "failed");
      },

      choiceText(choice) {
        return CHOICES[choice] || "—";
      },

      /** "A: lofi 1.0" for the side a pair played as 'a' or 'b'. */
      sideLabel(which) {
        if (which === "a") return `A: ${sideName(this.test.adapter_a)}`;
        if (which === "b") return `B: ${sideName(this.test.adapter_b)}`;
        return "—";
      },

      // Results

      get statusText() {
        return { generating: "Making clips", voting: "Voting", completed: "Completed", failed: "Failed" }[this.test.status]
          || this.test.status;
      },

      get statusClass() {
        return { generating: "badge-running", voting: "badge-cancelled", completed: "badge-completed",
          failed: "badge-failed" }[this.test.status] || "";
      },

      pct(value) {
        return value == null ? "—" : `${format.number(Math.round(value * 1000) / 10)}%`;
      },

      get intervalRows() {
        const r = this.test.results;
        return [
          { key: "wilson", label: "Wilson 95% interval (one look)", range: r.win_rate_ci },
          { key: "sequential", label: "Always-valid 95% interval (safe to watch)", range: r.sequential_ci },
        ];
      },

      get verdictSentence() {
        const r = this.test.results;
        const a = sideName(this.test.adapter_a);
        const b = sideName(this.test.adapter_b);
        if (r.verdict === "a_better") return `A (${a}) is better: the always-valid interval lies above 50%.`;
        if (r.verdict === "b_better") return `B (${b}) is better: the always-valid interval lies below 50%.`;
        if (r.decisive === 0 && r.ties === 0) return "No votes yet: listen to the pairs above and vote.";
        return "Undecided: the always-valid interval still includes 50%, so the votes cannot tell the two apart yet.";
      },

      async makeDataset() {
        this.making = true;
        this.datasetError = "";
        try {
          this.made = await api("POST", `/api/abtests/${encodeURIComponent(this.id)}/dataset`);
          this.test.dataset_id = this.made.id;
        } catch (err) {
          this.datasetError = describeError(err);
        } finally {
          this.making = false;
        }
      },
    };
  });
});
