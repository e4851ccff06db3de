/* The live widgets of the rendered book, built on window.tinydiff (tinydiff.js).
 *
 * A page asks for one with an empty element, <div class="tinydiff-live" data-widget="NAME"></div>, in a
 * markdown cell; the static figure beside it stays for readers without JavaScript. NAME is one of:
 *   noising   chapter 1: forward noising of a writing video, t and schedule (data-digit: the digit's 784
 *             pixels as hex bits, row by row), computed in the page;
 *   sampler   chapter 2: the writer, with digit, guidance, steps, sampler and eta;
 *   cascade   chapter 3: "write me a 7", or any digit: the drawer, then the animator;
 *   draw      your own digit: draw it (mouse or touch), the animator writes it;
 *   ablation  chapter 4: the three ablation networks side by side, from the same noise.
 * Sampling widgets show progress, disable their controls while they run, and say so where WebAssembly is
 * missing.
 */
(function () {
  "use strict";
  const td = window.tinydiff;
  const SIZE = 28, FRAMES = 15;

  // ---- small DOM helpers --------------------------------------------------------------------------------

  function el(tag, attributes = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attributes)) {
      if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) node.append(child);
    return node;
  }

  function labelled(text, control) {
    return el("label", {class: "tdw-control"}, el("span", {text}), control);
  }

  function select(options, value) {
    const node = el("select");
    for (const [key, text] of options) node.append(el("option", {value: key, text}));
    node.value = value;
    return node;
  }

  function range(min, max, step, value) {
    return el("input", {type: "range", min, max, step, value});
  }

  function digitChoice(value = "7") {
    return select([["any", "any digit"], ...Array.from({length: 10}, (_, d) => [String(d), String(d)])], value);
  }

  /** Paint one 28 x 28 frame (values in [0, 1], or [-1, 1] with signed) onto a canvas, `scale` px a pixel. */
  function paint(canvas, data, offset, scale, signed = false) {
    const context = canvas.getContext("2d");
    const image = context.createImageData(SIZE, SIZE);
    for (let k = 0; k < SIZE * SIZE; k++) {
      const v = signed ? (data[offset + k] + 1) / 2 : data[offset + k];
      const grey = Math.round(255 * Math.min(1, Math.max(0, v)));
      image.data.set([grey, grey, grey, 255], 4 * k);
    }
    const small = document.createElement("canvas");
    small.width = small.height = SIZE;
    small.getContext("2d").putImageData(image, 0, 0);
    context.imageSmoothingEnabled = false;
    context.drawImage(small, 0, 0, SIZE * scale, SIZE * scale);
  }

  function frameCanvas(scale) {
    return el("canvas", {width: SIZE * scale, height: SIZE * scale, class: "tdw-frame"});
  }

  /** Rows of videos that play together, with one frame slider and play/pause. rows: [{title, videos:
   *  {shape: [n, 15, 28, 28], data}, captions}] (or one videos object: a single row). */
  function player(rows, scale = 3) {
    rows = Array.isArray(rows) ? rows : [{videos: rows}];
    const frames = rows[0].videos.shape[1], per = SIZE * SIZE;
    const shown = rows.map(({videos, captions}) => Array.from({length: videos.shape[0]}, (_, i) => ({
      canvas: frameCanvas(scale), data: videos.data, offset: i * frames * per, caption: captions ? captions[i] : ""})));
    const slider = range(1, frames, 1, frames);
    const button = el("button", {type: "button", text: "pause"});
    const counter = el("span", {class: "tdw-counter"});
    let frame = frames - 1, timer = null;
    const show = (k) => {
      frame = k;
      slider.value = k + 1;
      counter.textContent = `frame ${k + 1} / ${frames}`;
      for (const row of shown) for (const v of row) paint(v.canvas, v.data, v.offset + k * per, scale);
    };
    const play = () => { timer = setInterval(() => show((frame + 1) % frames), 160); button.textContent = "pause"; };
    const stop = () => { clearInterval(timer); timer = null; button.textContent = "play"; };
    button.addEventListener("click", () => (timer ? stop() : play()));
    slider.addEventListener("input", () => { stop(); show(Number(slider.value) - 1); });
    show(frames - 1); // the finished videos first, then they play
    play();
    const node = el("div", {class: "tdw-player"});
    rows.forEach(({title}, r) => {
      if (title) node.append(el("div", {class: "tdw-row-title", text: title}));
      node.append(el("div", {class: "tdw-row"}, ...shown[r].map((v) => el("figure", {class: "tdw-cell"}, v.canvas,
                                                                       el("figcaption", {text: v.caption})))));
    });
    node.append(el("div", {class: "tdw-controls"}, button, slider, counter));
    node.stop = stop;
    return node;
  }

  // ---- a sampling widget's frame: controls, a run button, progress, output, messages ---------------------

  function samplingWidget(root, {title, controls, run, button = "sample"}) {
    const go = el("button", {type: "button", class: "tdw-go", text: button});
    const progress = el("progress", {max: 1, value: 0});
    const status = el("span", {class: "tdw-status"});
    const output = el("div", {class: "tdw-output"});
    const message = el("div", {class: "tdw-message", role: "status"});
    const inputs = controls.flatMap((c) => Array.from(c.querySelectorAll("input, select, button, canvas")));
    root.append(el("div", {class: "tdw-title", text: title}), el("div", {class: "tdw-controls"}, ...controls),
                el("div", {class: "tdw-controls"}, go, progress, status), message, output);
    if (td.webAssemblyMissing()) {
      message.textContent = "This browser has no WebAssembly, which the live widget needs: the figures show what it computes.";
      go.disabled = true;
      return;
    }
    go.addEventListener("click", async () => {
      [go, ...inputs].forEach((input) => { input.disabled = true; });
      message.textContent = "";
      status.textContent = "loading the networks...";
      progress.removeAttribute("value"); // indeterminate while loading
      const started = performance.now();
      try {
        const onProgress = ({stage, step, steps}) => {
          progress.max = steps;
          progress.value = step;
          status.textContent = `${stage}: step ${step} / ${steps}`;
        };
        const shown = await run(onProgress);
        output.querySelectorAll(".tdw-player").forEach((p) => p.stop());
        output.replaceChildren(shown);
        status.textContent = `done in ${((performance.now() - started) / 1000).toFixed(1)} s`;
      } catch (error) {
        message.textContent = `Could not sample: ${String((error && error.message) || error)}`;
        status.textContent = "";
        progress.value = 0;
      } finally {
        [go, ...inputs].forEach((input) => { input.disabled = false; });
        root.dispatchEvent(new CustomEvent("tinydiff:done"));
      }
    });
  }

  const asDigit = (value) => (value === "any" ? null : Number(value));

  // ---- chapter 1: forward noising, computed in the page ------------------------------------------------

  /** The writing transform (tinydiff.data.writing_video): ink's Euclidean distance to the background,
   *  weighted by 1 at the top row to 0 at the bottom, plus 0.5; frame k shows the ink whose priority
   *  exceeds (1 - k/15)(max + 1e-5). digit: 784 values in [0, 1]. Returns 15 x 784 in {0, 1}. */
  function writingVideo(digit) {
    const ink = Array.from(digit, (v) => v > 0.5);
    const background = [];
    ink.forEach((on, k) => { if (!on) background.push([Math.floor(k / SIZE), k % SIZE]); });
    const priority = new Float64Array(SIZE * SIZE);
    let top = 0;
    ink.forEach((on, k) => {
      if (!on) return;
      const row = Math.floor(k / SIZE), col = k % SIZE;
      let nearest = Infinity; // brute force over 784 pixels: exact, and instant at this size
      for (const [r, c] of background) nearest = Math.min(nearest, (r - row) ** 2 + (c - col) ** 2);
      priority[k] = Math.sqrt(nearest) * (1 - row / (SIZE - 1) + 0.5);
      top = Math.max(top, priority[k]);
    });
    const video = new Float32Array(FRAMES * SIZE * SIZE);
    for (let f = 0; f < FRAMES; f++) {
      const threshold = (1 - (f + 1) / FRAMES) * (top + 1e-5);
      for (let k = 0; k < SIZE * SIZE; k++) video[f * SIZE * SIZE + k] = priority[k] > threshold ? 1 : 0;
    }
    return video;
  }

  function hexDigit(hex) {
    const bits = new Float32Array(SIZE * SIZE);
    for (let k = 0; k < bits.length; k++) bits[k] = (parseInt(hex[k >> 2], 16) >> (3 - (k & 3))) & 1;
    return bits;
  }

  function noisingWidget(root) {
    const video = writingVideo(hexDigit(root.dataset.digit || "0".repeat(196)));
    const x0 = video.map((v) => 2 * v - 1); // model space [-1, 1]
    const noise = td.gaussian(0).fill(x0.length);
    const t = range(0, 999, 1, 300), schedule = select([["cosine", "cosine"], ["linear", "linear"]], "cosine");
    const readout = el("div", {class: "tdw-status"});
    const canvases = Array.from({length: FRAMES}, () => frameCanvas(2));
    const update = () => {
      const started = performance.now();
      const sched = td.schedule(schedule.value);
      const step = Number(t.value);
      const xt = td.noised(sched, x0, step, noise);
      canvases.forEach((canvas, f) => paint(canvas, xt, f * SIZE * SIZE, 2, true));
      const ab = sched.sa(step) ** 2;
      readout.textContent = `t = ${step}: √ᾱ = ${Math.sqrt(ab).toFixed(3)}, SNR = ${(ab / (1 - ab)).toPrecision(3)}` +
        ` (${(performance.now() - started).toFixed(0)} ms)`;
      root.dataset.updateMs = (performance.now() - started).toFixed(2);
    };
    t.addEventListener("input", update);
    schedule.addEventListener("change", update);
    root.append(el("div", {class: "tdw-title", text: "Forward noising, live: xₜ = √ᾱₜ x₀ + √(1 − ᾱₜ) ε, the same ε at every t, every frame"}),
                el("div", {class: "tdw-controls"}, labelled("t", t), labelled("schedule", schedule)),
                readout, el("div", {class: "tdw-row tdw-strip"}, ...canvases));
    update();
  }

  // ---- chapter 2: the writer's sampler ---------------------------------------------------------------

  function samplerWidget(root) {
    const digit = digitChoice("7"), guidance = range(0, 6, 0.5, 2), steps = range(2, 50, 1, 10);
    const sampler = select([["ddim", "DDIM"], ["dpm++2m", "DPM-Solver++(2M)"]], "ddim");
    const eta = range(0, 1, 0.1, 0), seed = el("input", {type: "number", value: 0, min: 0, step: 1});
    const shown = (node, input) => { const value = el("span", {class: "tdw-value"}); const sync = () => { value.textContent = input.value; }; input.addEventListener("input", sync); sync(); node.append(value); return node; };
    samplingWidget(root, {
      title: "The writer, live: four videos from the same noise",
      controls: [labelled("digit", digit), shown(labelled("guidance", guidance), guidance), shown(labelled("steps", steps), steps),
                 labelled("sampler", sampler), shown(labelled("eta (DDIM)", eta), eta), labelled("seed", seed)],
      run: async (onProgress) => {
        const d = asDigit(digit.value);
        const videos = await td.sample({model: "writer", n: 4, digit: d, guidance: d === null ? 1 : Number(guidance.value),
                                        steps: Number(steps.value), sampler: sampler.value, eta: Number(eta.value),
                                        seed: Number(seed.value), onProgress});
        return player(videos);
      },
    });
  }

  // ---- chapter 3: the cascade ------------------------------------------------------------------------

  function cascadeWidget(root) {
    const digit = digitChoice("7"), seed = el("input", {type: "number", value: 0, min: 0, step: 1});
    samplingWidget(root, {
      title: "Write me a digit, live: the drawer (DDIM-20), then the animator (DDIM-10)",
      button: "write",
      controls: [labelled("digit", digit), labelled("seed", seed)],
      run: async (onProgress) => player(await td.sample({model: "cascade", n: 4, digit: asDigit(digit.value), steps: 20,
                                                         seed: Number(seed.value), onProgress})),
    });
  }

  // ---- chapter 4: the ablation networks side by side ------------------------------------------------------

  const ABLATION = [["ablation-per-frame", "per-frame"], ["ablation-temporal-conv", "+ temporal conv"],
                    ["ablation-attention", "+ attention"]];

  function ablationWidget(root) {
    const digit = digitChoice("7"), seed = el("input", {type: "number", value: 0, min: 0, step: 1});
    samplingWidget(root, {
      title: "The three ablation networks, live: the same noise, the same digit (DDIM-20; guidance 2 for a digit)",
      controls: [labelled("digit", digit), labelled("seed", seed)],
      run: async (onProgress) => {
        const rows = [];
        const noise = td.gaussian(Number(seed.value)).fill(4 * FRAMES * SIZE * SIZE); // shared by the three
        for (const [name, title] of ABLATION) {
          const videos = await td.sample({model: name, n: 4, digit: asDigit(digit.value), steps: 20, noise,
                                          onProgress: (p) => onProgress({...p, stage: title})});
          rows.push({title, videos});
        }
        return player(rows);
      },
    });
  }

  // ---- your own digit: draw, then animate ------------------------------------------------------------

  /** The drawing made MNIST-like: ink's bounding box scaled to fit 20 x 20, its ink rescaled so the darkest
   *  pixel is 1 (shrinking thins the strokes), placed in 28 x 28 with its centre of mass at the centre as far
   *  as the box stays inside (as tinydiff.drawing.digit_from_ink). Returns 784 values in [0, 1], or null. */
  function mnistLike(canvas) {
    const {width, height} = canvas;
    const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
    let top = height, bottom = -1, left = width, right = -1;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        if (pixels[4 * (y * width + x)] > 25) {
          top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
        }
      }
    }
    if (bottom < 0) return null;
    const w = right - left + 1, h = bottom - top + 1, scale = 20 / Math.max(w, h);
    const box = document.createElement("canvas");
    box.width = box.height = SIZE;
    const context = box.getContext("2d");
    context.fillStyle = "black";
    context.fillRect(0, 0, SIZE, SIZE);
    context.imageSmoothingQuality = "high";
    const sw = Math.max(1, Math.round(w * scale)), sh = Math.max(1, Math.round(h * scale));
    const boxTop = Math.floor((SIZE - sh) / 2), boxLeft = Math.floor((SIZE - sw) / 2);
    context.drawImage(canvas, left, top, w, h, boxLeft, boxTop, sw, sh);
    const grey = context.getImageData(0, 0, SIZE, SIZE).data;
    const ink = new Float32Array(SIZE * SIZE);
    let darkest = 0, mass = 0, my = 0, mx = 0;
    for (let k = 0; k < ink.length; k++) darkest = Math.max(darkest, grey[4 * k]);
    for (let k = 0; k < ink.length; k++) {
      ink[k] = grey[4 * k] / darkest;
      mass += ink[k]; my += ink[k] * Math.floor(k / SIZE); mx += ink[k] * (k % SIZE);
    }
    const clamp = (v, low, high) => Math.min(high, Math.max(low, v));
    const dy = clamp(Math.round(SIZE / 2 - 0.5 - my / mass), -boxTop, SIZE - boxTop - sh);
    const dx = clamp(Math.round(SIZE / 2 - 0.5 - mx / mass), -boxLeft, SIZE - boxLeft - sw);
    const centred = new Float32Array(SIZE * SIZE);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const sy = y - dy, sx = x - dx;
        if (sy >= 0 && sy < SIZE && sx >= 0 && sx < SIZE) centred[y * SIZE + x] = ink[sy * SIZE + sx];
      }
    }
    return centred;
  }

  function drawWidget(root) {
    const pad = el("canvas", {width: 196, height: 196, class: "tdw-pad", "aria-label": "draw a digit here"});
    const context = pad.getContext("2d");
    const clear = () => { context.fillStyle = "black"; context.fillRect(0, 0, pad.width, pad.height); };
    clear();
    context.strokeStyle = "white";
    context.lineWidth = 14;
    context.lineCap = context.lineJoin = "round";
    let drawing = false;
    const at = (event) => {
      const box = pad.getBoundingClientRect();
      return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
    };
    pad.addEventListener("pointerdown", (event) => {
      if (pad.disabled) return; // set while the animator runs (samplingWidget disables every control)
      drawing = true;
      if (event.isTrusted) pad.setPointerCapture(event.pointerId); // keep the stroke when it leaves the pad
      context.beginPath();
      context.moveTo(...at(event));
      context.lineTo(...at(event));
      context.stroke();
    });
    pad.addEventListener("pointermove", (event) => {
      if (drawing) { context.lineTo(...at(event)); context.stroke(); }
    });
    ["pointerup", "pointercancel"].forEach((name) => pad.addEventListener(name, () => { drawing = false; }));
    const erase = el("button", {type: "button", text: "clear", onclick: clear});
    root.dataset.ready = "1";
    samplingWidget(root, {
      title: "Your own digit, live: draw it (mouse or finger), and the animator writes it (DDIM-10)",
      button: "animate",
      controls: [el("div", {class: "tdw-pad-box"}, pad, erase)],
      run: async (onProgress) => {
        const digit = mnistLike(pad);
        if (!digit) throw new Error("draw a digit first");
        const videos = await td.sample({model: "animator", n: 1, image: digit, steps: 10, seed: 0, onProgress});
        const truth = {shape: [1, FRAMES, SIZE, SIZE], data: writingVideo(digit)};
        const given = Float32Array.from(digit, (v) => (v > 0.5 ? 1 : 0));
        const both = {shape: [3, FRAMES, SIZE, SIZE], data: new Float32Array(3 * FRAMES * SIZE * SIZE)};
        for (let f = 0; f < FRAMES; f++) both.data.set(given, f * SIZE * SIZE); // the given digit, in every frame
        both.data.set(videos.data, FRAMES * SIZE * SIZE);
        both.data.set(truth.data, 2 * FRAMES * SIZE * SIZE);
        return player([{videos: both, captions: ["what the network is given", "the animator writes it",
                                                 "the writing transform's video"]}]);
      },
    });
  }

  const WIDGETS = {noising: noisingWidget, sampler: samplerWidget, cascade: cascadeWidget, draw: drawWidget,
                   ablation: ablationWidget};

  function start() {
    document.querySelectorAll(".tinydiff-live").forEach((root) => {
      const make = WIDGETS[root.dataset.widget];
      root.replaceChildren();
      if (!make) {
        root.textContent = `unknown live widget "${root.dataset.widget}"; known: ${Object.keys(WIDGETS).join(", ")}`;
        return;
      }
      make(root);
      root.classList.add("tdw-ready");
    });
  }

  td.widgets = {writingVideo, mnistLike, hexDigit, start};
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
