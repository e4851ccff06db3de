/* tinydiff in the reader's browser: the course's samplers around its shipped networks, run by onnxruntime-web.
 *
 * window.tinydiff.sample({model, n, digit, guidance, steps, seed, sampler, eta, image, noise, onProgress})
 * returns a Promise of {shape: [n, 15, 28, 28], data: Float32Array} with values in [0, 1].
 *
 * The arithmetic is tinydiff's, written again the way chapter 2 writes it: the schedule is
 * tinydiff/schedule.py, the timesteps, DDIM, DPM-Solver++(2M) and guidance are tinydiff/sampling.py, the
 * two-stage generation is tinydiff/cascade.py. tests/test_web.py checks that, from the same initial noise,
 * this file's videos are the Python pipeline's.
 *
 * Nothing heavy loads with the page: the runtime (about 15 MB) and a network's weights are fetched on the
 * first sample that needs them. Opened from disk (file://), where a page may not fetch files, they come as
 * scripts that carry them in base64 (the book's build writes both forms; tinydiff/web.py).
 */
(function () {
  "use strict";

  const NO_LABEL = 10; // the label embedding's "no label" entry (tinydiff.model.NO_LABEL)
  const LABEL_GUIDANCE = 2.0; // the default guidance toward a digit (tinydiff.pipeline.LABEL_GUIDANCE)
  const WRITE_STEPS = 10; // DDIM steps of the cascade's writing stage (tinydiff.cascade.WRITE_STEPS)
  const SAMPLERS = ["ddim", "dpm++2m"];

  // ---- the noise schedule (tinydiff/schedule.py), in float64 as there -------------------------------

  /** sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t) for t = 0 .. T-1, plus t = -1 ("x_0 itself") at index T. */
  function schedule(name, T = 1000) {
    const betas = new Float64Array(T);
    if (name === "linear") { // Ho et al. 2020: 1e-4 .. 0.02, rescaled for other T
      const scale = 1000 / T;
      for (let t = 0; t < T; t++) betas[t] = scale * 1e-4 + (scale * 0.02 - scale * 1e-4) * t / (T - 1);
    } else if (name === "cosine") { // Nichol & Dhariwal 2021, eq. 17, betas clipped at 0.999
      const f = (t) => Math.cos((t / T + 0.008) / 1.008 * Math.PI / 2) ** 2;
      for (let t = 0; t < T; t++) betas[t] = Math.min(1 - f(t + 1) / f(t), 0.999);
    } else {
      throw new Error(`unknown noise schedule ${name}; known: linear, cosine`);
    }
    const sqrtAb = new Float64Array(T + 1), sqrtOneMinusAb = new Float64Array(T + 1);
    let ab = 1;
    for (let t = 0; t < T; t++) {
      ab *= 1 - betas[t];
      sqrtAb[t] = Math.sqrt(ab);
      sqrtOneMinusAb[t] = Math.sqrt(1 - ab);
    }
    sqrtAb[T] = 1; // t = -1
    sqrtOneMinusAb[T] = 0;
    const at = (table) => (t) => table[t < 0 ? T : t];
    return {name, T, sa: at(sqrtAb), sb: at(sqrtOneMinusAb)};
  }

  /** The timesteps a sampler visits, largest first, "trailing" spacing: round(T (steps - i) / steps) - 1,
   *  rounding halves to even as numpy does (tinydiff.sampling.timesteps). */
  function timesteps(T, steps) {
    const visited = [];
    for (let i = 0; i < steps; i++) {
      let q = Math.floor(T * (steps - i) / steps);
      const r = T * (steps - i) - q * steps;
      if (2 * r > steps || (2 * r === steps && q % 2 === 1)) q += 1;
      visited.push(q - 1);
    }
    return visited;
  }

  /** Forward noising q(x_t | x_0): sqrt(ab_t) x0 + sqrt(1 - ab_t) noise, elementwise (chapter 1). */
  function noised(sched, x0, t, noise, out = new Float32Array(x0.length)) {
    const a = sched.sa(t), b = sched.sb(t);
    for (let i = 0; i < x0.length; i++) out[i] = a * x0[i] + b * noise[i];
    return out;
  }

  // ---- seeded Gaussian noise ------------------------------------------------------------------------
  // Not torch's generator: the same seed gives the same videos in every browser, not the Python ones. A test
  // that compares the two passes the Python noise in (`noise`).

  function gaussian(seed) {
    let s = (seed >>> 0) || 0x9e3779b9; // mulberry32: 32-bit state, good enough for sampling noise
    const uniform = () => {
      s = (s + 0x6d2b79f5) >>> 0;
      let z = s;
      z = Math.imul(z ^ (z >>> 15), z | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      return ((z ^ (z >>> 14)) >>> 0) / 4294967296;
    };
    const fill = (n) => { // Box-Muller, two values per pair of uniforms
      const out = new Float32Array(n);
      for (let i = 0; i < n; i += 2) {
        const r = Math.sqrt(-2 * Math.log(1 - uniform())), angle = 2 * Math.PI * uniform();
        out[i] = r * Math.cos(angle);
        if (i + 1 < n) out[i + 1] = r * Math.sin(angle);
      }
      return out;
    };
    return {uniform, fill};
  }

  // ---- one sampling run (tinydiff.sampling.sample_steps) ---------------------------------------------

  /**
   * Run the reverse chain from x_T (Float32Array of the samples' shape, model space [-1, 1]).
   * denoise(x, t) -> Promise of the network's output; prediction: "x0", "eps" or "v".
   * DDIM (Song et al. 2021, eq. 12 and 16) or DPM-Solver++(2M) (Lu et al. 2022, algorithm 2), with
   * x0_hat clipped to [-1, 1] before each step. Returns x_0.
   */
  async function reverse(denoise, sched, prediction, xT, {sampler = "ddim", steps = 20, eta = 0, rng, onStep}) {
    if (!["x0", "eps", "v"].includes(prediction)) throw new Error(`unknown prediction target ${prediction}`);
    const visited = timesteps(sched.T, steps);
    let x = Float32Array.from(xT);
    let earlier = null; // DPM-Solver++(2M): the previous step's x0_hat and timestep
    for (let i = 0; i < visited.length; i++) {
      const t = visited[i], tPrev = i === visited.length - 1 ? -1 : visited[i + 1];
      const out = await denoise(x, t);
      const sa = sched.sa(t), sb = sched.sb(t);
      const x0 = new Float32Array(x.length), eps = new Float32Array(x.length);
      for (let k = 0; k < x.length; k++) {
        let guess = prediction === "x0" ? out[k] : prediction === "eps" ? (x[k] - sb * out[k]) / sa : sa * x[k] - sb * out[k]; // v
        guess = Math.min(1, Math.max(-1, guess)); // the data range
        x0[k] = guess;
        eps[k] = (x[k] - sa * guess) / sb; // the noise that takes the clipped x0_hat to x_t
      }
      const saP = sched.sa(tPrev), sbP = sched.sb(tPrev);
      const next = new Float32Array(x.length);
      if (sampler === "dpm++2m") {
        // lambda = log(sqrt(ab) / sqrt(1 - ab)); h = lambda(t_prev) - lambda(t); the last step is first order.
        const lam = (u) => Math.log(sched.sa(u) / sched.sb(u));
        const h = lam(tPrev) - lam(t); // +inf at t_prev = -1: then e^-h - 1 = -1 and x_prev = x0_hat
        const scaleX = sbP / sb, scaleD = -saP * Math.expm1(-h);
        const half = earlier && tPrev >= 0 ? h / (lam(t) - lam(earlier.t)) / 2 : 0; // 1 / 2r
        for (let k = 0; k < x.length; k++) {
          const d = half ? (1 + half) * x0[k] - half * earlier.x0[k] : x0[k];
          next[k] = scaleX * x[k] + scaleD * d;
        }
        earlier = {x0, t};
      } else {
        // sigma^2 = eta^2 (1 - ab_prev) / (1 - ab_t) (1 - ab_t / ab_prev); eta = 0 is deterministic.
        const sigma = eta * sbP / sb * Math.sqrt(Math.max(0, 1 - (sa / saP) ** 2));
        const direction = Math.sqrt(Math.max(0, sbP * sbP - sigma * sigma));
        const noise = sigma > 0 ? rng.fill(x.length) : null;
        for (let k = 0; k < x.length; k++) next[k] = saP * x0[k] + direction * eps[k] + (noise ? sigma * noise[k] : 0);
      }
      x = next;
      if (onStep) onStep(i + 1, visited.length, x0);
    }
    return x;
  }

  // ---- the runtime and the networks, loaded on first use ------------------------------------------------

  const here = (document.currentScript && document.currentScript.src) || location.href;
  const ASSETS = new URL("tinydiff/", here).href; // _static/tinydiff/, beside this file
  const fromDisk = location.protocol === "file:";
  const carried = {}; // name -> base64, filled by the .js forms of the assets (file://)
  let runtime = null, catalogue = null;
  const sessions = {};

  function loadScript(url) {
    return new Promise((resolve, reject) => {
      const tag = document.createElement("script");
      tag.src = url;
      tag.onload = () => resolve();
      tag.onerror = () => reject(new Error(`could not load ${url}`));
      document.head.appendChild(tag);
    });
  }

  function decode(base64) {
    const text = atob(base64), bytes = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) bytes[i] = text.charCodeAt(i);
    return bytes;
  }

  /** An asset's bytes: fetched over http(s); from its .js form on disk. */
  async function asset(name) {
    if (!fromDisk) {
      const response = await fetch(ASSETS + name);
      if (!response.ok) throw new Error(`could not load ${ASSETS + name} (HTTP ${response.status})`);
      return new Uint8Array(await response.arrayBuffer());
    }
    if (!(name in carried)) await loadScript(`${ASSETS}${name}.js`);
    const bytes = decode(carried[name]);
    delete carried[name]; // keep one copy
    return bytes;
  }

  function webAssemblyMissing() {
    return typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function";
  }

  /** onnxruntime-web (WASM backend) and the catalogue of networks (models.js, written by the build). */
  function loadRuntime() {
    if (!runtime) {
      runtime = (async () => {
        if (webAssemblyMissing()) {
          throw new Error("this browser has no WebAssembly, which the live widgets need; the figures above " +
                          "show what they compute");
        }
        await loadScript(ASSETS + "models.js");
        await loadScript(ASSETS + "ort.wasm.min.js");
        const ort = window.ort;
        // Threads need a cross-origin-isolated page, which neither a file on disk nor most static hosts give.
        ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
        if (fromDisk) { // no fetch from file://: the WASM binary as bytes, its loader as a blob URL
          ort.env.wasm.wasmBinary = await asset("ort-wasm-simd-threaded.wasm");
          const loader = new TextDecoder().decode(await asset("ort-wasm-simd-threaded.mjs"));
          ort.env.wasm.wasmPaths = {mjs: URL.createObjectURL(new Blob([loader], {type: "text/javascript"}))};
        } else {
          ort.env.wasm.wasmPaths = ASSETS;
        }
        return ort;
      })();
      runtime.catch(() => { runtime = null; }); // a failed load may be retried
    }
    return runtime;
  }

  async function network(name) {
    const ort = await loadRuntime();
    const meta = catalogue.models[name];
    if (!meta) throw new Error(`no network called ${name} in this book; it has ${Object.keys(catalogue.models).join(", ")}`);
    if (!sessions[name]) {
      sessions[name] = (async () => {
        const session = await ort.InferenceSession.create(await asset(meta.file), {executionProviders: ["wasm"]});
        return {ort, session, meta, name};
      })();
      sessions[name].catch(() => { delete sessions[name]; });
    }
    return sessions[name];
  }

  /** One forward pass: x (n, 1, F, H, W), t for all, condition (n, 1, H, W) or null, labels (n) or null. */
  async function forward(net, x, n, t, condition, labels) {
    const {ort, session, meta} = net;
    const {frames, size} = meta;
    const feeds = {
      x: new ort.Tensor("float32", x, [n, 1, frames, size, size]),
      t: new ort.Tensor("int64", BigInt64Array.from({length: n}, () => BigInt(t)), [n]),
    };
    if (meta.conditional) feeds.condition = new ort.Tensor("float32", condition || new Float32Array(n * size * size), [n, 1, size, size]);
    if (meta.labels) feeds.label = new ort.Tensor("int64", BigInt64Array.from(labels || new Array(n).fill(NO_LABEL), BigInt), [n]);
    const result = await session.run(feeds);
    return result.prediction.data;
  }

  /**
   * Classifier-free guidance as a denoiser (tinydiff.sampling.guided): uncond + guidance (cond - uncond),
   * both branches in one batched pass; guidance 1 is the conditional model alone, 0 the unconditional one.
   */
  function guided(net, n, condition, labels, guidance) {
    const none = !condition && !labels;
    if (none || guidance === 1) return (x, t) => forward(net, x, n, t, condition, labels);
    if (guidance === 0) return (x, t) => forward(net, x, n, t, null, null);
    const per = net.meta.size * net.meta.size;
    const conditions = condition ? new Float32Array(2 * n * per) : null;
    if (conditions) conditions.set(condition); // the second half stays zero: no condition
    const both = labels ? [...labels, ...new Array(n).fill(NO_LABEL)] : null;
    return async (x, t) => {
      const doubled = new Float32Array(2 * x.length);
      doubled.set(x);
      doubled.set(x, x.length);
      const out = await forward(net, doubled, 2 * n, t, conditions, both);
      const mixed = new Float32Array(x.length);
      for (let k = 0; k < x.length; k++) {
        const cond = out[k], uncond = out[x.length + k];
        mixed[k] = uncond + guidance * (cond - uncond);
      }
      return mixed;
    };
  }

  /** Model space (n, 1, F, H, W) in [-1, 1] -> frames in [0, 1]. */
  function toFrames(x) {
    const out = new Float32Array(x.length);
    for (let k = 0; k < x.length; k++) out[k] = Math.min(1, Math.max(0, (x[k] + 1) / 2));
    return out;
  }

  /** A finished digit as the condition: (28 x 28) values in [0, 1] (or 0..255) -> {-1, 1} ink (> half). */
  function conditionFrom(images, n, size) {
    if (images.length !== 1 && images.length !== n) throw new Error(`give one digit image, or n = ${n} of them; got ${images.length}`);
    const condition = new Float32Array(n * size * size);
    for (let i = 0; i < n; i++) {
      const image = images.length === 1 ? images[0] : images[i];
      if (!image || image.length !== size * size) throw new Error(`a digit image must hold ${size} x ${size} values`);
      const top = Math.max(...image) > 1 ? 255 : 1;
      for (let k = 0; k < size * size; k++) condition[i * size * size + k] = image[k] / top > 0.5 ? 1 : -1;
    }
    return condition;
  }

  function labelsFor(digit, n) {
    if (digit === null || digit === undefined) return null;
    const labels = Array.isArray(digit) ? digit.slice() : new Array(n).fill(digit);
    if (labels.length !== n || !labels.every((d) => Number.isInteger(d) && d >= 0 && d <= 9)) {
      throw new Error(`digit must be an integer 0-9, or n of them; got ${JSON.stringify(digit)}`);
    }
    return labels;
  }

  /** A label drawn from the training data's digit frequencies (the cascade's "any digit"). */
  function drawLabels(prior, n, rng) {
    return Array.from({length: n}, () => {
      let u = rng.uniform(), d = 0;
      while (d < prior.length - 1 && u >= prior[d]) u -= prior[d++];
      return d;
    });
  }

  const MODE_NAMES = {noise: ["videos from nothing", "a video from nothing (any digit)"],
                      label: ["a class label", "a digit by its label"], image: ["the finished digit", "image-to-video"]};

  /** Refuse what a network never trained on (tinydiff.pipeline.Pipeline._check_trained_for): the mode asked
   *  for, and for guidance other than 1 the unconditional mode guidance pushes from (at 0, that one alone). */
  function checkTrained(name, meta, mode, guidance) {
    if (!meta.modes) return;
    const needed = guidance === 0 ? ["noise"] : [mode, ...(guidance !== 1 ? ["noise"] : [])];
    const missing = needed.filter((m) => !meta.modes.includes(m));
    if (!missing.length) return;
    const trained = meta.modes.map((m) => MODE_NAMES[m][0]).join(" and ");
    const asked = missing.includes(mode) ? MODE_NAMES[mode][1] : `guidance ${guidance} (it needs videos from nothing)`;
    const hint = meta.modes.length === 1 && meta.modes[0] === "image" && missing.includes(mode) ? '; model "cascade" generates from noise' : "";
    throw new Error(`${name} was trained only on ${trained}, so it cannot be asked for ${asked}${hint}`);
  }

  /** One stage: n samples of `net`, from noise xT (or seeded noise). Returns model space. */
  async function stage(net, n, {condition = null, labels = null, guidance = 1, sampler, steps, eta, rng, xT, onStep}) {
    const {frames, size} = net.meta;
    const length = n * frames * size * size;
    if (xT && xT.length !== length) throw new Error(`the initial noise must hold ${length} values (${n} x 1 x ${frames} x ${size} x ${size})`);
    const denoise = guided(net, n, condition, labels, guidance);
    return reverse(denoise, schedule(net.meta.schedule, net.meta.num_timesteps), net.meta.prediction,
                   xT || rng.fill(length), {sampler, steps, eta, rng, onStep});
  }

  /**
   * Videos in the page.
   *   model: "writer" (from nothing or a label), "animator" (given a digit `image`), "cascade" (the drawer,
   *     then the animator), or any network of the catalogue (chapter 4's ablation networks).
   *   n: videos; digit: null (any) or 0-9 (or n of them); guidance: classifier-free guidance toward the digit
   *     (default 2 for a digit, else 1); steps: DDIM or DPM-Solver++ steps (the cascade's drawing stage; its
   *     writing stage takes 10); seed: the noise; sampler: "ddim" or "dpm++2m"; eta: DDIM's noise.
   *   image: a digit (28 x 28 values, row by row; or n of them) for "animator".
   *   noise: the initial noise, a Float32Array (n x 1 x 15 x 28 x 28), or {draw, write} for "cascade".
   *   onProgress({stage, step, steps}): called after every step.
   * Returns a Promise of {shape: [n, 15, 28, 28], data: Float32Array} in [0, 1].
   */
  async function sample({model = "cascade", n = 4, digit = null, guidance = null, steps = 20, seed = 0,
                         sampler = "ddim", eta = 0, image = null, noise = null, onProgress = null} = {}) {
    if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error(`n must be an integer from 1 to 64, got ${n}`);
    if (!Number.isInteger(steps) || steps < 1 || steps > 1000) throw new Error(`steps must be an integer from 1 to 1000, got ${steps}`);
    if (!SAMPLERS.includes(sampler)) throw new Error(`sampler must be one of ${SAMPLERS.join(", ")}, got ${sampler}`);
    if (!(eta >= 0 && eta <= 1)) throw new Error(`eta must lie in [0, 1], got ${eta}`);
    if (guidance !== null && !Number.isFinite(guidance)) throw new Error(`guidance must be a number, got ${guidance}`);
    if (!Number.isInteger(seed) || seed < 0) throw new Error(`seed must be a non-negative integer, got ${seed}`);
    await loadRuntime(); // the catalogue, too
    const rng = gaussian(seed);
    let labels = labelsFor(digit, n);
    const report = (name) => (step, total) => onProgress && onProgress({stage: name, step, steps: total});
    const options = {sampler, steps, eta, rng};

    if (model === "cascade") {
      const [drawer, writer] = await Promise.all(catalogue.cascade.map(network));
      // As tinydiff.cascade: any digit at guidance 1 (the default) draws a label from the training data's
      // digit frequencies first, then asks for it at guidance 1; guidance 0 is the drawer's unconditional mode.
      if (image) throw new Error('the cascade draws its own digit; to animate an image, use model "animator"');
      if (noise && !(noise.draw && noise.write)) throw new Error("the cascade's noise is {draw, write}, one per stage");
      const g = guidance === null ? (labels ? LABEL_GUIDANCE : 1) : guidance;
      if (labels && !drawer.meta.labels) throw new Error("this cascade's drawer has no labels and cannot be asked for a digit");
      if (!labels && g === 1 && drawer.meta.labels && drawer.meta.label_prior) labels = drawLabels(drawer.meta.label_prior, n, rng);
      if (!labels && g !== 1 && g !== 0) throw new Error("guidance needs something to guide toward: pass a digit");
      checkTrained(catalogue.cascade[0], drawer.meta, labels ? "label" : "noise", labels ? g : 1);
      const drawn = await stage(drawer, n, {...options, labels: g === 0 ? null : labels, guidance: g,
                                            xT: noise && noise.draw, onStep: report("drawing")});
      const condition = new Float32Array(drawn.length); // binarised, as image-to-video's condition is
      for (let k = 0; k < drawn.length; k++) condition[k] = Math.fround((drawn[k] + 1) / 2) > 0.5 ? 1 : -1;
      const written = await stage(writer, n, {condition, sampler: "ddim", steps: WRITE_STEPS, eta: 0, rng,
                                              xT: noise && noise.write, onStep: report("writing")});
      return {shape: [n, writer.meta.frames, writer.meta.size, writer.meta.size], data: toFrames(written)};
    }

    const net = await network(model);
    const {frames, size} = net.meta;
    let condition = null;
    if (image) {
      if (!net.meta.conditional) throw new Error(`${model} takes no digit image; it generates from noise`);
      if (digit !== null) throw new Error("digit asks for a class when generating from noise; an image is animated as it is");
      condition = conditionFrom(Array.isArray(image) && image.length && image[0].length ? image : [image], n, size);
    }
    if (labels && !net.meta.labels) throw new Error(`${model} was trained without labels, so it cannot be asked for a digit`);
    const g = guidance === null ? (labels ? LABEL_GUIDANCE : 1) : guidance;
    if (!labels && !condition && g !== 1 && g !== 0) throw new Error("guidance needs something to guide toward: a digit or an image");
    checkTrained(model, net.meta, condition ? "image" : labels ? "label" : "noise", g);
    const x = await stage(net, n, {...options, condition, labels, guidance: g, xT: noise, onStep: report("sampling")});
    return {shape: [n, frames, size, size], data: toFrames(x)};
  }

  window.tinydiff = {
    sample, schedule, timesteps, noised, gaussian, loadRuntime, webAssemblyMissing, NO_LABEL, LABEL_GUIDANCE,
    _session: async (name) => (await network(name)).session, // tests/test_web.py runs each network
    _carry(name, base64) { carried[name] = base64; }, // called by the .js forms of the assets
    _catalogue(value) { catalogue = value; }, // called by models.js
  };
})();
