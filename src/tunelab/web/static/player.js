// The clip player the studio's pages share (`player` in _macros.html): a play button, the waveform drawn by
// wavesurfer.js (from npm) to see and seek in, and the time. It tells the page when a clip starts and when it has been
// heard to its end (DOM events `clip-started` and `clip-heard`, which bubble), and only one clip plays at a time.
"use strict";

(() => {
  const PLAYING = "tunelab:playing"; // a window event: the player that started, so the others pause
  const SEEK_STEP_S = 1;

  /** Seconds as 0:04.2: clips are short, and a tenth of a second tells a half-second clip from the start. */
  function clock(seconds) {
    const value = Math.max(0, Number(seconds) || 0);
    const minutes = Math.floor(value / 60);
    const rest = (value - minutes * 60).toFixed(1).padStart(4, "0");
    return `${minutes}:${rest}`;
  }

  function colour(name, fallback) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || fallback;
  }

  window.TuneLab.player = { clock };

  document.addEventListener("alpine:init", () => {
    Alpine.data("player", (url, label) => {
      // wavesurfer stays outside Alpine's reactive state: it must not be proxied.
      let wave = null;
      let root = null;
      let pauseOthers = null;
      return {
        url,
        label,
        ready: false,
        playing: false,
        started: false,
        heard: false,
        current: 0,
        duration: 0,
        error: "",

        init() {
          root = this.$el;
          if (typeof WaveSurfer === "undefined") {
            this.error = "The waveform player (wavesurfer.js) is not installed: run npm ci.";
            return;
          }
          wave = WaveSurfer.create({
            container: this.$refs.wave,
            url: this.url,
            height: 48,
            barWidth: 2,
            barGap: 1,
            barRadius: 2,
            normalize: true,
            waveColor: colour("--wave", "#b9b0ec"),
            progressColor: colour("--accent", "#5b3fd9"),
            cursorColor: colour("--text", "#1c2230"),
          });
          wave.on("ready", (duration) => {
            this.ready = true;
            this.duration = duration;
          });
          wave.on("timeupdate", (time) => {
            this.current = time;
          });
          wave.on("play", () => {
            this.playing = true;
            window.dispatchEvent(new CustomEvent(PLAYING, { detail: root }));
            if (!this.started) {
              this.started = true;
              root.dispatchEvent(new CustomEvent("clip-started", { bubbles: true }));
            }
          });
          wave.on("pause", () => {
            this.playing = false;
          });
          wave.on("finish", () => {
            this.playing = false;
            this.current = this.duration;
            if (!this.heard) {
              this.heard = true;
              root.dispatchEvent(new CustomEvent("clip-heard", { bubbles: true }));
            }
          });
          wave.on("error", (err) => {
            this.error = `The clip could not be loaded: ${(err && err.message) || err}`;
          });
          pauseOthers = (event) => {
            if (event.detail !== root && wave && wave.isPlaying()) wave.pause();
          };
          window.addEventListener(PLAYING, pauseOthers);
        },

        destroy() {
          if (pauseOthers) window.removeEventListener(PLAYING, pauseOthers);
          if (wave) wave.destroy();
          wave = null;
        },

        toggle() {
          if (!wave || !this.ready) return;
          wave.playPause().catch((err) => {
            this.error = `The clip could not be played: ${(err && err.message) || err}`;
          });
        },

        /** The waveform is a slider too: arrows seek a second, Home and End go to the ends, Space plays. */
        seekKey(event) {
          if (!wave || !this.ready) return;
          const moves = {
            ArrowRight: this.current + SEEK_STEP_S,
            ArrowLeft: this.current - SEEK_STEP_S,
            Home: 0,
            End: this.duration,
          };
          if (event.key === " " || event.key === "Enter") {
            event.preventDefault();
            this.toggle();
          } else if (event.key in moves) {
            event.preventDefault();
            wave.setTime(Math.min(this.duration, Math.max(0, moves[event.key])));
          }
        },

        get timeText() {
          return `${clock(this.current)} / ${clock(this.duration)}`;
        },

        get state() {
          if (this.error) return "error";
          if (!this.ready) return "loading";
          if (this.playing) return "playing";
          return this.heard ? "heard" : "ready";
        },
      };
    });
  });
})();
