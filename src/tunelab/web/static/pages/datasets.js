// The datasets list: create one, or the demo dataset, which an empty studio offers first.
"use strict";

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting, notify } = window.TuneLab;

  Alpine.data("datasetsPage", () => ({
    ...formatting,
    datasets: [],
    loaded: false,
    creating: false,
    form: { name: "", type: "supervised" },
    formError: "",

    async init() {
      await this.refresh();
    },

    async refresh() {
      try {
        this.datasets = (await api("GET", "/api/datasets")).items;
      } catch (err) {
        notify(`Could not load the datasets: ${describeError(err)}`, "error");
      } finally {
        this.loaded = true;
      }
    },

    async create() {
      if (!this.form.name.trim()) {
        this.formError = "Give the dataset a name.";
        return;
      }
      this.creating = true;
      try {
        const created = await api("POST", "/api/datasets", { name: this.form.name.trim(), type: this.form.type });
        window.location.assign(`/datasets/${encodeURIComponent(created.id)}`);
      } catch (err) {
        this.formError = describeError(err);
      } finally {
        this.creating = false;
      }
    },

    async demo() {
      this.creating = true;
      try {
        const created = await api("POST", "/api/datasets/demo");
        notify(`Created “${created.name}” with ${created.item_count} clips.`);
        await this.refresh();
      } catch (err) {
        notify(`Could not create the demo dataset: ${describeError(err)}`, "error");
      } finally {
        this.creating = false;
      }
    },
  }));
});
