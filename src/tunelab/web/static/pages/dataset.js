// One dataset: add clips (several files at once, each its own item), listen to them, delete items.
"use strict";

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting, notify } = window.TuneLab;

  async function send(url, form) {
    const response = await fetch(url, { method: "POST", body: form, headers: { Accept: "application/json" } });
    const data = await response.json().catch(() => null);
    if (!response.ok) {
      const error = (data && data.error) || {};
      throw new window.TuneLab.ApiError(response.status, error.code, error.message || `HTTP ${response.status}`, error.details);
    }
    return data;
  }

  Alpine.data("datasetPage", () => ({
    ...formatting,
    id: "",
    ds: null,
    prompt: "",
    rating: "5",
    uploading: false,
    errors: [],

    async init() {
      this.id = this.$el.dataset.datasetId;
      await this.refresh();
    },

    async refresh() {
      try {
        this.ds = await api("GET", `/api/datasets/${encodeURIComponent(this.id)}`);
        document.title = `${this.ds.name} · TuneLab`;
      } catch (err) {
        notify(`Could not load the dataset: ${describeError(err)}`, "error");
      }
    },

    audioOf(item) {
      return [item.audio_id, item.chosen_audio_id, item.rejected_audio_id].filter(Boolean);
    },

    async upload() {
      this.errors = [];
      const url = `/api/datasets/${encodeURIComponent(this.id)}/items`;
      const forms = [];
      if (this.ds.type === "supervised") {
        const files = [...(this.$refs.files ? this.$refs.files.files : [])];
        if (files.length === 0) this.errors.push("Choose one or more clips.");
        for (const file of files) {
          const form = new FormData();
          form.append("prompt", this.prompt);
          form.append("rating", this.rating);
          form.append("audio", file);
          forms.push([file.name, form]);
        }
      } else {
        const chosen = this.$refs.chosen && this.$refs.chosen.files[0];
        const rejected = this.$refs.rejected && this.$refs.rejected.files[0];
        const form = new FormData();
        form.append("prompt", this.prompt);
        if (chosen) form.append("chosen", chosen);
        if (rejected) form.append("rejected", rejected);
        forms.push(["the pair", form]);
      }
      if (this.errors.length) return;
      this.uploading = true;
      let added = 0;
      for (const [name, form] of forms) {
        try {
          await send(url, form);
          added += 1;
        } catch (err) {
          this.errors.push(`${name}: ${describeError(err)}`);
        }
      }
      this.uploading = false;
      if (added) notify(`Added ${added} item${added === 1 ? "" : "s"}.`);
      await this.refresh();
    },

    async remove(item) {
      try {
        await api("DELETE", `/api/datasets/${encodeURIComponent(this.id)}/items/${encodeURIComponent(item.id)}`);
        await this.refresh();
      } catch (err) {
        notify(`Could not delete the item: ${describeError(err)}`, "error");
      }
    },
  }));
});
