// The studio: the prompt editor (adapter picker that greys out adapters of other models, duration within the current
// model's limit, seed with a dice, guidance), the clips (polled while any is being made, each with its player,
// download and stars) and a dataset from the clips rated well.
"use strict";

const MAX_SEED = 2 ** 31 - 1; // the API's limit
const PROMPT_MAX = 1000;
const JOBS_PAGE = 20;
const POLL_MS = 1000;
const UNFINISHED = new Set(["pending", "running"]);
const DEFAULT_DURATION_S = 5;

document.addEventListener("alpine:init", () => {
  const { api, describeError, format, formatting } = window.TuneLab;

  Alpine.data("studioPage", () => {
    let timer = null; // the next poll of the clips, while some are being made
    const wantedRatings = new Map(); // clip id → the stars last chosen
    const savingRatings = new Set(); // clips whose rating is being saved
    return {
      ...formatting,
      maxSeed: MAX_SEED,
      model: null,
      models: [],
      modelsLoaded: false,
      loadError: "",
      allAdapters: [], // not deleted, any state: the dataset form filters by any of them
      adaptersLoaded: false,
      form: { prompt: "", duration: "", seed: "", guidance: "", adapterId: "" },
      problemField: "",
      formError: "",
      suggestions: [],
      submitting: false,
      pickerOpen: false,
      activeOption: null,
      hovered: null,
      pickerMessage: "",
      jobs: [],
      jobsTotal: 0,
      jobsLoaded: false,
      jobsError: "",
      limit: JOBS_PAGE,
      polling: false,
      ratingStatus: {},
      dataset: { name: "", minRating: "4", adapterId: "", saving: false, error: "", made: null },

      async init() {
        document.addEventListener("visibilitychange", () => this.visibilityChanged());
        await Promise.all([this.loadModels(), this.loadAdapters(), this.refreshJobs()]);
        const wanted = new URLSearchParams(window.location.search).get("adapter");
        const option = this.options.find((o) => o.id === wanted);
        if (option && option.compatible) this.form.adapterId = option.id;
      },

      destroy() {
        clearTimeout(timer);
      },

      async loadModels() {
        try {
          this.models = (await api("GET", "/api/models")).items;
          this.model = this.models.find((m) => m.current) || null;
          if (this.model && this.form.duration === "") {
            this.form.duration = String(Math.min(DEFAULT_DURATION_S, this.model.max_duration_s));
          }
        } catch (err) {
          this.loadError = `Could not load the models: ${describeError(err)}`;
        } finally {
          this.modelsLoaded = true;
        }
      },

      async loadAdapters() {
        try {
          const data = await api("GET", "/api/adapters?page_size=500");
          this.allAdapters = data.items;
          this.adaptersLoaded = true;
          if (this.form.adapterId && !this.options.some((o) => o.id === this.form.adapterId && o.compatible)) {
            this.form.adapterId = "";
          }
        } catch (err) {
          this.loadError = `Could not load the adapters: ${describeError(err)}`;
        }
      },

      modelName(modelId) {
        const found = this.models.find((m) => m.id === modelId);
        return found ? found.display_name : modelId;
      },

      // The adapter picker: a listbox in which adapters of another model stay visible but cannot be chosen

      /** The base model, then the active adapters that fit the current model, then those that need another. */
      get options() {
        const active = this.allAdapters.filter((a) => a.active);
        const sorted = [...active.filter((a) => a.compatible), ...active.filter((a) => !a.compatible)];
        return [
          { id: "", label: "None (base model)", version: "", compatible: true, model: null },
          ...sorted.map((a) => ({ id: a.id, label: a.name, version: a.version, compatible: a.compatible,
            model: a.base_model ? a.base_model.display_name : a.base_model_id || "another model" })),
        ];
      },

      get compatibleCount() {
        return this.options.filter((o) => o.id && o.compatible).length;
      },

      get incompatibleCount() {
        return this.options.filter((o) => !o.compatible).length;
      },

      get selectedLabel() {
        const option = this.options.find((o) => o.id === this.form.adapterId);
        return option && option.id ? `${option.label} ${option.version}` : "None (base model)";
      },

      optionId(option) {
        return `adapter-option-${option.id || "base"}`;
      },

      tipId(option) {
        return `adapter-tip-${option.id}`;
      },

      requires(option) {
        return `Requires ${option.model}`;
      },

      requiresSentence(option) {
        return `This adapter requires ${option.model}. Change model in Settings.`;
      },

      togglePicker() {
        if (this.pickerOpen) this.closePicker(true);
        else this.openPicker();
      },

      openPicker() {
        this.pickerOpen = true;
        this.activeOption = this.options.find((o) => o.id === this.form.adapterId) || this.options[0];
        this.$nextTick(() => {
          this.$refs.listbox.focus();
          this.scrollActive();
        });
      },

      closePicker(refocus) {
        if (!this.pickerOpen) return;
        this.pickerOpen = false;
        this.hovered = null;
        if (refocus) this.$refs.pickerButton.focus();
      },

      pickerFocusOut(event) {
        if (this.pickerOpen && !event.currentTarget.contains(event.relatedTarget)) this.closePicker(false);
      },

      /** Choosing an adapter of another model is refused, with the reason where the eyes are. */
      choose(option) {
        this.activeOption = option;
        if (!option.compatible) {
          this.pickerMessage = this.requiresSentence(option);
          return;
        }
        this.form.adapterId = option.id;
        this.pickerMessage = "";
        this.clearError();
        this.closePicker(true);
      },

      /** Arrows open the list; keys that come before the list has taken the focus (fast typists) go to it. */
      buttonKey(event) {
        if (this.pickerOpen) {
          this.listKey(event);
        } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
          event.preventDefault();
          this.openPicker();
        }
      },

      /** The WAI-ARIA listbox keys: arrows, Home and End move (over greyed-out options too), Enter and Space choose. */
      listKey(event) {
        const options = this.options;
        const index = Math.max(0, options.findIndex((o) => this.activeOption && o.id === this.activeOption.id));
        const moves = { ArrowDown: index + 1, ArrowUp: index - 1, Home: 0, End: options.length - 1 };
        if (event.key in moves) {
          event.preventDefault();
          this.activeOption = options[Math.min(options.length - 1, Math.max(0, moves[event.key]))];
          this.scrollActive();
        } else if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          if (this.activeOption) this.choose(this.activeOption);
        } else if (event.key === "Tab") {
          this.closePicker(false);
        }
      },

      scrollActive() {
        if (!this.activeOption) return;
        this.$nextTick(() => {
          const element = document.getElementById(this.optionId(this.activeOption));
          if (element) element.scrollIntoView({ block: "nearest" });
        });
      },

      // The prompt editor

      rollSeed() {
        const value = new Uint32Array(1);
        crypto.getRandomValues(value);
        this.form.seed = String(value[0] % (MAX_SEED + 1));
        this.clearError();
      },

      clearError() {
        this.formError = "";
        this.problemField = "";
        this.suggestions = [];
      },

      /** What is wrong with the form, as [field, message], or null; the API checks the same again. */
      formProblem() {
        const { prompt, duration, seed, guidance } = this.form;
        if (!prompt.trim()) return ["prompt", "Write a prompt first: what should the clip sound like?"];
        if ([...prompt.trim()].length > PROMPT_MAX) return ["prompt", `A prompt has at most ${PROMPT_MAX} characters.`];
        const seconds = Number(duration);
        if (String(duration).trim() === "" || !Number.isFinite(seconds) || seconds <= 0) {
          return ["duration", "Give the duration in seconds, more than 0."];
        }
        if (seconds > this.model.max_duration_s) {
          return ["duration", `${format.number(seconds)} s is longer than ${this.model.display_name} can make `
            + `(${format.number(this.model.max_duration_s)} s at most).`];
        }
        const seedValue = Number(seed);
        if (String(seed).trim() !== "" && (!Number.isInteger(seedValue) || seedValue < 0 || seedValue > MAX_SEED)) {
          return ["seed", `The seed is a whole number from 0 to ${MAX_SEED}, or empty for a random one.`];
        }
        const guidanceValue = Number(guidance);
        if (String(guidance).trim() !== "" && !(guidanceValue >= 1 && guidanceValue <= 20)) {
          return ["guidance", "Guidance is a number from 1 to 20, or empty to leave it off."];
        }
        return null;
      },

      requestBody() {
        const { prompt, duration, seed, guidance, adapterId } = this.form;
        const body = { prompt: prompt.trim(), duration_s: Number(duration) };
        if (adapterId) body.adapter_id = adapterId;
        if (String(seed).trim() !== "") body.seed = Number(seed);
        if (String(guidance).trim() !== "") body.guidance_scale = Number(guidance);
        return body;
      },

      async generate() {
        if (this.submitting || !this.model) return;
        const problem = this.formProblem();
        if (problem) {
          [this.problemField, this.formError] = problem;
          return;
        }
        this.submitting = true;
        this.clearError();
        try {
          const job = await api("POST", "/api/generations", this.requestBody());
          if (!this.jobs.some((j) => j.id === job.id)) {
            this.jobs.unshift(job);
            this.jobsTotal += 1;
          }
          this.jobsLoaded = true;
          this.schedule();
        } catch (err) {
          this.showGenerateError(err);
        } finally {
          this.submitting = false;
        }
      },

      showGenerateError(err) {
        this.formError = describeError(err);
        this.problemField = err.code === "duration_too_long" ? "duration" : "";
        this.suggestions = Array.isArray(err.details.compatible_adapters) ? err.details.compatible_adapters : [];
        if (String(err.code).startsWith("adapter_") || err.code === "duration_too_long") {
          // The page was out of date (an adapter or the model changed elsewhere): show what is true now.
          this.loadModels();
          this.loadAdapters();
        }
      },

      // The clips, polled while some are being made

      get unfinished() {
        return this.jobs.filter((job) => UNFINISHED.has(job.status)).length;
      },

      async refreshJobs() {
        try {
          const data = await api("GET", `/api/generations?page_size=${this.limit}`);
          this.jobs = data.items;
          this.jobsTotal = data.total;
          this.jobsError = "";
        } catch (err) {
          this.jobsError = `Could not load the clips: ${describeError(err)}`;
        } finally {
          this.jobsLoaded = true;
        }
        this.schedule();
      },

      /** Poll only while a clip is being made and the page is visible: an idle studio sends nothing. */
      schedule() {
        clearTimeout(timer);
        timer = null;
        this.polling = this.unfinished > 0;
        if (this.polling && document.visibilityState === "visible") {
          timer = setTimeout(() => this.refreshJobs(), POLL_MS);
        }
      },

      visibilityChanged() {
        if (document.visibilityState === "visible" && this.polling) this.refreshJobs();
        else if (document.visibilityState !== "visible") clearTimeout(timer);
      },

      showMore() {
        this.limit += JOBS_PAGE;
        this.refreshJobs();
      },

      timingText(job) {
        const t = job.timings || {};
        if (job.status === "pending") return "waiting for the generation worker";
        if (job.status === "running") return "being made";
        if (job.status === "failed") return job.completed_at ? `failed ${format.date(job.completed_at)}` : "failed";
        const parts = [];
        if (t.generate_s != null) parts.push(`made in ${format.number(t.generate_s)} s`);
        if (t.queued_s != null) parts.push(`queued ${format.number(t.queued_s)} s`);
        if (t.total_s != null) parts.push(`${format.number(t.total_s)} s in all`);
        return parts.join(" · ") || "done";
      },

      /**
       * Save a rating. Arrow keys in the stars change it several times a second: one save per clip is in flight at a
       * time and the last choice is sent once it returns, so an older choice never lands after a newer one.
       */
      async rate(job, stars) {
        wantedRatings.set(job.id, stars);
        if (savingRatings.has(job.id)) return;
        savingRatings.add(job.id);
        this.ratingStatus[job.id] = "Saving…";
        try {
          let sent = null;
          while (sent !== wantedRatings.get(job.id)) {
            sent = wantedRatings.get(job.id);
            const saved = await api("POST", `/api/generations/${encodeURIComponent(job.id)}/rating`, { rating: sent });
            const index = this.jobs.findIndex((j) => j.id === job.id);
            if (index >= 0) this.jobs[index] = saved;
          }
          this.ratingStatus[job.id] = `Saved: ${sent} / 5`;
        } catch (err) {
          this.ratingStatus[job.id] = `Not saved: ${describeError(err)}`;
        } finally {
          savingRatings.delete(job.id);
        }
      },

      // A dataset from the clips rated well

      async makeDataset() {
        const name = this.dataset.name.trim();
        if (!name) {
          this.dataset.error = "Give the dataset a name.";
          return;
        }
        this.dataset.saving = true;
        this.dataset.error = "";
        this.dataset.made = null;
        const body = { name, min_rating: Number(this.dataset.minRating) };
        if (this.dataset.adapterId) body.adapter_id = this.dataset.adapterId;
        try {
          this.dataset.made = await api("POST", "/api/datasets/from-ratings", body);
        } catch (err) {
          this.dataset.error = describeError(err);
        } finally {
          this.dataset.saving = false;
        }
      },
    };
  });
});
