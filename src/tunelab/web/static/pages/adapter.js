// One adapter: its version, where it came from and its final metrics (the registry's pages grow from here).
"use strict";

document.addEventListener("alpine:init", () => {
  const { api, describeError, formatting, notify } = window.TuneLab;
  Alpine.data("adapterPage", () => ({
    ...formatting,
    adapter: null,
    async init() {
      try {
        this.adapter = await api("GET", `/api/adapters/${encodeURIComponent(this.$el.dataset.adapterId)}`);
        document.title = `${this.adapter.name} ${this.adapter.version} · TuneLab`;
      } catch (err) {
        notify(`Could not load the adapter: ${describeError(err)}`, "error");
      }
    },
  }));
});
