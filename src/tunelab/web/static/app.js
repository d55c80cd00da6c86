// What every TuneLab page shares: the JSON API client, formatting and toasts. Each page's own component lives in
// static/pages/<page>.js and reaches these through the one global `TuneLab`.
"use strict";

const TOAST_MS = { success: 5000, error: 10000 };
const MAX_TOASTS = 3;

class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details || {};
  }
}

/** Call the JSON API; resolve to the parsed body or throw an ApiError built from the error envelope. */
async function api(method, url, body) {
  const init = { method, headers: { Accept: "application/json" } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError(0, "network_error", "The server could not be reached. Is TuneLab still running?");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    const error = (data && data.error) || {};
    throw new ApiError(
      response.status,
      error.code || `http_${response.status}`,
      error.message || `The request failed (HTTP ${response.status}).`,
      error.details,
    );
  }
  return data;
}

/** A readable message for an ApiError; the envelope's message already names the first field problem. */
function describeError(err) {
  const problems = Array.isArray(err.details && err.details.errors) ? err.details.errors : [];
  const more = problems
    .slice(1)
    .map((p) => (p && p.msg ? `${(p.loc || []).filter((l) => l !== "body").join(".")}: ${p.msg}` : ""))
    .filter(Boolean);
  return more.length ? `${err.message}; ${more.join("; ")}` : err.message;
}

const format = {
  /** The one number format of every table: integers as they are, else 4 significant digits, exponent at the ends. */
  number(value) {
    if (value === null || value === undefined || Number.isNaN(value)) return "—";
    if (!Number.isFinite(value)) return value > 0 ? "∞" : "−∞";
    const size = Math.abs(value);
    if (Number.isInteger(value) && size < 1e6) return String(value);
    if (value !== 0 && (size < 1e-3 || size >= 1e6)) {
      const [mantissa, exponent] = value.toExponential(3).split("e");
      return `${mantissa.replace(/\.?0+$/, "")}e${exponent.replace("+", "")}`;
    }
    return String(Number(value.toPrecision(4)));
  },
  bytes(size) {
    if (size === null || size === undefined) return "—";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let unit = 0;
    let scaled = size;
    while (scaled >= 1024 && unit < units.length - 1) {
      scaled /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${size} B` : `${Number(scaled.toPrecision(3))} ${units[unit]}`;
  },
  date(iso) {
    if (!iso) return "—";
    const date = new Date(iso);
    if (Number.isNaN(date.getTime())) return iso;
    return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
  },
  status(status) {
    return status ? status.charAt(0).toUpperCase() + status.slice(1) : "";
  },
  scalar(value) {
    if (value === undefined) return "—";
    if (typeof value === "number") return format.number(value);
    if (value !== null && typeof value === "object") return JSON.stringify(value);
    return String(value);
  },
  config(config) {
    const entries = Object.entries(config || {});
    if (entries.length === 0) return "—";
    const shown = entries.slice(0, 4).map(([key, value]) => `${key}=${format.scalar(value)}`);
    return shown.join(", ") + (entries.length > 4 ? `, +${entries.length - 4} more` : "");
  },
  /** The start of a hash or commit, enough to tell them apart on screen; the full value goes in a title. */
  short(hash, length = 12) {
    return hash ? hash.slice(0, length) : "—";
  },
};

/** Shared helpers every page component mixes in. */
const formatting = {
  fmt: format.number,
  fmtBytes: format.bytes,
  fmtDate: format.date,
  fmtShort: format.short,
  statusLabel: format.status,
  configSummary: format.config,
};

/**
 * Toasts leave on their own (errors stay longer), at most MAX_TOASTS at once, and the timer stops while the
 * pointer or focus is on one so it can be read. Every method goes through Alpine's reactive proxy of the store
 * (`live()`), never `this` or the plain object: a timer calls back with neither, and changes made to the plain
 * object would never reach the page.
 */
function toastStore() {
  let nextId = 1;
  const timers = new Map();
  const live = () => Alpine.store("toasts");
  return {
    items: [],
    push(message, kind = "success") {
      // The same message again (a retried action) restarts its toast instead of stacking a copy.
      const store = live();
      store.items.filter((t) => t.message === message && t.kind === kind).forEach((t) => store.dismiss(t.id));
      const id = nextId++;
      store.items.push({ id, message, kind, remaining: TOAST_MS[kind] || TOAST_MS.success });
      while (store.items.length > MAX_TOASTS) store.dismiss(store.items[0].id);
      store.resume(id);
    },
    pause(id) {
      const timer = timers.get(id);
      if (!timer) return;
      clearTimeout(timer.handle);
      timers.delete(id);
      const toast = live().items.find((t) => t.id === id);
      if (toast) toast.remaining = Math.max(1000, toast.remaining - (Date.now() - timer.started));
    },
    resume(id) {
      const toast = live().items.find((t) => t.id === id);
      if (!toast || timers.has(id)) return;
      timers.set(id, { started: Date.now(), handle: setTimeout(() => live().dismiss(id), toast.remaining) });
    },
    dismiss(id) {
      const timer = timers.get(id);
      if (timer) clearTimeout(timer.handle);
      timers.delete(id);
      live().items = live().items.filter((t) => t.id !== id);
    },
  };
}

/**
 * The toasts sit fixed at the bottom of the window. The page keeps as much room below its content as they take,
 * and a reader who was at the bottom stays there, so they never hide the last row or the page controls.
 */
function reserveToastSpace(region) {
  const root = document.documentElement;
  let reserved = 0;
  new ResizeObserver(() => {
    const height = region.offsetHeight;
    const space = height > 0 ? height + 24 : 0;
    if (space === reserved) return;
    const atBottom = window.scrollY + window.innerHeight >= root.scrollHeight - 4;
    reserved = space;
    root.style.setProperty("--toast-space", `${space}px`);
    if (atBottom && space > 0) window.scrollTo({ top: root.scrollHeight, behavior: "instant" });
  }).observe(region);
}

const TuneLab = {
  ApiError,
  api,
  describeError,
  format,
  formatting,
  notify(message, kind) {
    Alpine.store("toasts").push(message, kind);
  },
};
window.TuneLab = TuneLab;

/** On a phone the top bar scrolls sideways: bring the current section's link into view. */
function showCurrentSection() {
  const current = document.querySelector(".topbar nav [aria-current=page]");
  const bar = current && current.closest("nav");
  if (bar && bar.scrollWidth > bar.clientWidth) {
    const offset = current.getBoundingClientRect().left - bar.getBoundingClientRect().left;
    bar.scrollLeft += offset - (bar.clientWidth - current.offsetWidth) / 2;
  }
}

document.addEventListener("DOMContentLoaded", showCurrentSection);

document.addEventListener("alpine:init", () => {
  Alpine.store("toasts", toastStore());
  const region = document.querySelector("[data-testid=toasts]");
  if (region) reserveToastSpace(region);
});
