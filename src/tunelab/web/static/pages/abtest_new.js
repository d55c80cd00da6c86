// Setting up an A/B test: two sides (adapters of the current model, active or not, or the base model), prompts one per line,
// samples per prompt, duration and seed. ?a=<id>&b=<id> picks the sides (the adapters page's "Quick A/B test").
"use strict";

const AB_MAX_PROMPTS = 50;
const AB_MAX_SAMPLES = 20;
const AB_MAX_PAIRS = 200;
const AB_DEFAULT_DURATION_S = 5;

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting } = window.TuneLab;
  const { sideName } = window.TuneLab.abtests;

  Alpine.data("abtestNewPage", () => ({
    ...formatting,
    model: null,
    loaded: false,
    loadError: "",
    usable: [], // adapters of the current model, active or not (comparing two versions of a name is the point)
    asked: [], // adapters named in the address that are not usable: shown, with the reason
    form: { a: "", b: "", prompts: "", samples: "1", duration: "", seed: "", name: "" },
    problemField: "",
    formError: "",
    creating: false,

    async init() {
      const params = new URLSearchParams(window.location.search);
      const wanted = [params.get("a"), params.get("b")];
      try {
        const [models, adapters] = await Promise.all([
          api("GET", "/api/models"),
          api("GET", "/api/adapters?page_size=500"),
        ]);
        this.model = models.items.find((m) => m.current) || null;
        this.usable = adapters.items.filter((a) => a.compatible);
        if (this.model) this.form.duration = String(Math.min(AB_DEFAULT_DURATION_S, this.model.max_duration_s));
        await this.loadAsked(wanted.filter((id) => id && !this.usable.some((a) => a.id === id)));
      } catch (err) {
        this.loadError = `Could not load the models and adapters: ${describeError(err)}`;
      } finally {
        this.loaded = true;
      }
      const known = (id) => this.sideOptions.some((o) => o.id === id);
      this.form.a = wanted[0] && known(wanted[0]) ? wanted[0] : (this.usable[0] ? this.usable[0].id : "");
      this.form.b = wanted[1] && known(wanted[1]) ? wanted[1] : "";
    },

    async loadAsked(ids) {
      const found = await Promise.all(ids.map((id) => api("GET", `/api/adapters/${encodeURIComponent(id)}`)
        .catch(() => null)));
      this.asked = found.filter(Boolean);
    },

    get sideOptions() {
      const base = { id: "", label: `Base model${this.model ? ` (${this.model.display_name})` : ""}` };
      const label = (a) => `${a.name} ${a.version}${this.problemOf(a) ? ` (${this.problemOf(a)})` : ""}`;
      return [base, ...[...this.usable, ...this.asked].map((a) => ({ id: a.id, label: label(a) }))];
    },

    /** Why an adapter named in the address cannot be tested now, in a few words. */
    problemOf(adapter) {
      if (this.usable.some((a) => a.id === adapter.id)) return "";
      if (!adapter.compatible) {
        return `requires ${adapter.base_model ? adapter.base_model.display_name : adapter.base_model_id}`;
      }
      return "";
    },

    adapterOf(id) {
      return [...this.usable, ...this.asked].find((a) => a.id === id) || null;
    },

    get sideWarnings() {
      const warnings = [];
      for (const [side, id] of [["A", this.form.a], ["B", this.form.b]]) {
        const adapter = this.adapterOf(id);
        const problem = adapter ? this.problemOf(adapter) : "";
        if (problem) {
          warnings.push(`Side ${side}: ${sideName(adapter)} ${problem}; change the model in Settings to test it.`);
        }
      }
      if (this.form.a === this.form.b) {
        warnings.push("Both sides are the same: the test compares two seeds of one model, which is only useful as a check.");
      }
      return warnings;
    },

    get prompts() {
      return this.form.prompts.split("\n").map((line) => line.trim()).filter(Boolean);
    },

    get pairSummary() {
      const prompts = this.prompts.length;
      const samples = Number(this.form.samples) || 0;
      const pairs = prompts * samples;
      const duration = Number(this.form.duration) || 0;
      return `${prompts} prompt${prompts === 1 ? "" : "s"} × ${samples} sample${samples === 1 ? "" : "s"} = `
        + `${pairs} pair${pairs === 1 ? "" : "s"} to vote on (${pairs * 2} clips of ${format.number(duration)} s; `
        + `at most ${AB_MAX_PAIRS} pairs).`;
    },

    get defaultName() {
      return `${sideName(this.adapterOf(this.form.a))} vs ${sideName(this.adapterOf(this.form.b))}`;
    },

    clearError() {
      this.formError = "";
      this.problemField = "";
    },

    formProblem() {
      const prompts = this.prompts;
      if (prompts.length === 0) return ["prompts", "Write at least one prompt, one per line."];
      if (prompts.length > AB_MAX_PROMPTS) return ["prompts", `At most ${AB_MAX_PROMPTS} prompts; there are ${prompts.length}.`];
      const long = prompts.findIndex((p) => [...p].length > 1000);
      if (long >= 0) return ["prompts", `Prompt ${long + 1} is longer than 1000 characters.`];
      const samples = Number(this.form.samples);
      if (!Number.isInteger(samples) || samples < 1 || samples > AB_MAX_SAMPLES) {
        return ["samples", `Samples per prompt is a whole number from 1 to ${AB_MAX_SAMPLES}.`];
      }
      if (prompts.length * samples > AB_MAX_PAIRS) {
        return ["samples", `${prompts.length * samples} pairs asked; a test has at most ${AB_MAX_PAIRS}.`];
      }
      const duration = Number(this.form.duration);
      if (!(duration > 0)) return ["duration", "Give the duration of each clip in seconds."];
      if (duration > this.model.max_duration_s) {
        return ["duration", `${format.number(duration)} s is longer than ${this.model.display_name} can make `
          + `(${format.number(this.model.max_duration_s)} s at most).`];
      }
      const seed = Number(this.form.seed);
      if (this.form.seed !== "" && (!Number.isInteger(seed) || seed < 0 || seed > 2 ** 31 - 1)) {
        return ["seed", "The seed is a whole number from 0 to 2147483647, or empty for a random one."];
      }
      return null;
    },

    async create() {
      if (this.creating || !this.model) return;
      const problem = this.formProblem();
      if (problem) {
        [this.problemField, this.formError] = problem;
        return;
      }
      this.clearError();
      const body = {
        adapter_a_id: this.form.a || null,
        adapter_b_id: this.form.b || null,
        prompts: this.prompts,
        samples_per_prompt: Number(this.form.samples),
        duration_s: Number(this.form.duration),
      };
      if (this.form.name.trim()) body.name = this.form.name.trim();
      if (this.form.seed !== "") body.seed = Number(this.form.seed);
      this.creating = true;
      try {
        const test = await api("POST", "/api/abtests", body);
        window.location.assign(`/abtests/${encodeURIComponent(test.id)}`);
      } catch (err) {
        this.formError = describeError(err);
        this.creating = false;
      }
    },
  }));
});
