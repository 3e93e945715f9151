// "Say it" (book/say_it.md): chapter 5's recogniser in the browser.
//
// Two ONNX graphs, exported from the committed checkpoint by speechmodels/export.py, run in
// onnxruntime-web's wasm build, all served from this folder:
//   encoder.onnx  pcm (N,) 8 kHz -> features (T, 40) (the course's log-mel, computed in the
//                 graph) and memory (T', 1, 96)
//   decoder.onnx  memory, prefix (U, 1) -> logits (V,) of the next symbol, attention (T',)
// Decoding is greedy, one utterance: feed <s>, take the most probable symbol, append it, stop
// at </s> (or after T' + 1 symbols, as speechmodels/transcribe.py does). Beam search is Lab 5's
// exercise and is not here.

const HERE = new URL("./", import.meta.url);
const MAX_SECONDS = 10;            // a recording stops by itself here (window.sayIt.maxSeconds)
const QUIET_DBFS = -35;            // a peak below this is too quiet to hear digits in
const $ = (id) => document.getElementById(id);

// Every sentence the script writes, one table per language: the page's <html lang> picks one
// ("ko" on the Korean page, book/ko/say_it.md, which tools/twins.py marks so; English elsewhere).
// Each sentence is one sentence (no ". " inside), as the page's tests read them.
const SENTENCES = {
  en: {
    noWebAssembly: "This browser cannot run WebAssembly, which the recogniser needs: open the page in a " +
                   "current Firefox, Chrome, Edge or Safari.",
    ready: "Ready: press Record, say a few digits, then press Stop; or try an example.",
    noMicrophone: "This browser gives the page no microphone (it allows one only on a page served over https " +
                  "or from this computer); the examples below still work.",
    loadFailed: (why) => `The recogniser could not be loaded (${why}): reload the page to try again.`,
    exampleLabel: (example) => `${example.source === "real" ? example.voice : "synthetic"}: “${example.text}”`,
    exampleTitle: (example) => `${example.file}: ${example.voice} says “${example.text}”`,
    reading: (file) => `Reading ${file}…`,
    unreadable: (file, why) => `The example ${file} could not be read (${why}).`,
    exampleSaid: (example) => `${example.voice} said “${example.text}”. `,
    recording: (seconds, most) => `Recording: ${seconds.toFixed(1)} s (it stops by itself at ${most} s).`,
    recordingStarted: "Recording: say a few digits, one at a time, then press Stop.",
    refused: "The microphone was refused: allow this page to use it (the icon in the address bar) and " +
             "press Record again, or try an example below.",
    notFound: "No microphone was found: plug one in and press Record again, or try an example below.",
    notReadable: "The microphone could not be started (another program may be using it): close that " +
                 "program and press Record again.",
    notOpened: (why) => `The microphone could not be opened (${why}); the examples below still work.`,
    stoppedAt: (most) => `The recording stopped at ${most} s, the longest this page takes. `,
    tooShort: (had, needs) => `That was only ${had} s; the recogniser needs at least ${needs} s: ` +
                              "press Record, say a few digits, then press Stop.",
    silent: "The recording is silent: check that the microphone is not muted and press Record again.",
    tooQuiet: (dbfs) => `The recording is too quiet to hear digits in (its loudest moment is ${dbfs} dBFS): ` +
                        "speak closer to the microphone, or turn its level up, and press Record again.",
    listening: "Listening…",
    heard: (text) => `Heard “${text}”.`,
    heardNothing: "It heard nothing: the model ended at once.",
    took: (seconds, duration) => `${seconds} s in this browser for ${duration} s of audio ` +
                                 "(front end, encoder and every decoder step).",
    wentWrong: (why) => `Something went wrong (${why}): reload the page to try again.`,
    unknownError: "unknown error",
  },
  ko: {
    noWebAssembly: "이 브라우저는 인식기에 필요한 WebAssembly를 실행할 수 없습니다: 최신 Firefox, " +
                   "Chrome, Edge 또는 Safari에서 이 페이지를 여십시오.",
    ready: "준비되었습니다: 녹음을 누르고 숫자 몇 개를 말한 다음 정지를 누르거나, 예제를 들어 보십시오.",
    noMicrophone: "이 브라우저는 이 페이지에 마이크를 허락하지 않습니다(https로 제공되거나 이 컴퓨터에서 " +
                  "열린 페이지에만 허락합니다); 아래 예제는 그래도 쓸 수 있습니다.",
    loadFailed: (why) => `인식기를 불러오지 못했습니다(${why}): 페이지를 새로 고쳐 다시 시도하십시오.`,
    exampleLabel: (example) => `${example.source === "real" ? example.voice : "합성 음성"}: “${example.text}”`,
    exampleTitle: (example) => `${example.file}: ${example.source === "real" ? example.voice : "합성 음성"}의 ` +
                               `발화 “${example.text}”`,
    reading: (file) => `${file} 읽는 중…`,
    unreadable: (file, why) => `예제 ${file}: 읽을 수 없습니다(${why}).`,
    exampleSaid: (example) => `${example.source === "real" ? example.voice : "합성 음성"}: “${example.text}”. `,
    recording: (seconds, most) => `녹음 중: ${seconds.toFixed(1)}초 (${most}초가 되면 저절로 멈춥니다).`,
    recordingStarted: "녹음 중: 숫자 몇 개를 하나씩 말한 다음 정지를 누르십시오.",
    refused: "마이크 사용이 거부되었습니다: 이 페이지가 마이크를 쓰도록 허용하고(주소 표시줄의 아이콘) " +
             "녹음을 다시 누르거나, 아래 예제를 들어 보십시오.",
    notFound: "마이크를 찾지 못했습니다: 마이크를 연결하고 녹음을 다시 누르거나, 아래 예제를 들어 보십시오.",
    notReadable: "마이크를 시작할 수 없습니다(다른 프로그램이 쓰고 있을 수 있습니다): 그 프로그램을 닫고 " +
                 "녹음을 다시 누르십시오.",
    notOpened: (why) => `마이크를 열 수 없습니다(${why}); 아래 예제는 그래도 쓸 수 있습니다.`,
    stoppedAt: (most) => `녹음은 이 페이지가 받는 가장 긴 길이인 ${most}초에서 멈췄습니다. `,
    tooShort: (had, needs) => `녹음이 ${had}초뿐입니다; 인식기에는 적어도 ${needs}초가 필요합니다: ` +
                              "녹음을 누르고 숫자 몇 개를 말한 다음 정지를 누르십시오.",
    silent: "녹음에 소리가 없습니다: 마이크가 음소거되지 않았는지 확인하고 녹음을 다시 누르십시오.",
    tooQuiet: (dbfs) => `녹음이 너무 작아서 숫자를 알아들을 수 없습니다(가장 큰 순간이 ${dbfs} dBFS): ` +
                        "마이크에 더 가까이 대고 말하거나 입력 레벨을 올린 다음 녹음을 다시 누르십시오.",
    listening: "듣는 중…",
    heard: (text) => `들은 것: “${text}”.`,
    heardNothing: "아무것도 듣지 못했습니다: 모델이 곧바로 끝냈습니다.",
    took: (seconds, duration) => `오디오 ${duration}초를 이 브라우저에서 ${seconds}초 만에 처리했습니다 ` +
                                 "(프런트엔드, 인코더, 모든 디코더 단계).",
    wentWrong: (why) => `문제가 생겼습니다(${why}): 페이지를 새로 고쳐 다시 시도하십시오.`,
    unknownError: "알 수 없는 오류",
  },
};
const LANGUAGE = (document.documentElement.lang || "en").toLowerCase().startsWith("ko") ? "ko" : "en";
const SAY = SENTENCES[LANGUAGE];

const ui = {
  record: $("say-it-record"), stop: $("say-it-stop"), play: $("say-it-play"), status: $("say-it-status"),
  examples: $("say-it-examples"), heard: $("say-it-heard"), took: $("say-it-took"),
  spectrogram: $("say-it-spectrogram"), attention: $("say-it-attention"), level: $("say-it-level"),
};

let ort = null, encoder = null, decoder = null, constants = null;
let busy = false, last = null, lastSamples = null, recording = null, player = null;

function say(sentence, kind = "info") {
  ui.status.textContent = sentence;
  ui.status.dataset.kind = kind;
}

function setBusy(value) {
  busy = value;
  const ready = encoder !== null && !value;
  ui.record.disabled = !ready || recording !== null;
  ui.play.disabled = value || lastSamples === null;
  for (const button of ui.examples.querySelectorAll("button")) button.disabled = !ready;
}

// ------------------------------------------------------------------ loading

async function load() {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.instantiate !== "function") {
    say(SAY.noWebAssembly, "error");
    return;
  }
  try {
    const started = performance.now();
    ort = await import(new URL("ort.wasm.bundle.min.mjs", HERE).href);
    ort.env.wasm.numThreads = 1;                     // a static site cannot have the headers threads need
    ort.env.wasm.wasmPaths = { wasm: new URL("ort-wasm-simd-threaded.wasm", HERE).href };   // the glue is in the bundle
    ort.env.logLevel = "error";
    constants = await (await fetch(new URL("recogniser.json", HERE))).json();
    const options = { executionProviders: ["wasm"], graphOptimizationLevel: "all" };
    [encoder, decoder] = await Promise.all(["encoder.onnx", "decoder.onnx"].map(
      (name) => ort.InferenceSession.create(new URL(name, HERE).href, options)));
    const loaded = performance.now();
    await listExamples();
    say(navigator.mediaDevices && navigator.mediaDevices.getUserMedia ? SAY.ready : SAY.noMicrophone, "info");
    setBusy(false);
    // last, so that whoever waits for it (the tests, benchmarks/say_it.py) finds the examples listed
    window.sayIt.loadSeconds = (loaded - started) / 1000;
    window.sayIt.resolveReady();
  } catch (error) {
    say(SAY.loadFailed(reason(error)), "error");
  }
}

function reason(error) {
  const text = String((error && (error.message || error.name)) || error || SAY.unknownError);
  return text.split("\n")[0].replace(/[.\s]+$/, "").slice(0, 160);
}

async function listExamples() {
  const list = await (await fetch(new URL("examples.json", HERE))).json();
  for (const example of list) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "say-it-example";
    button.textContent = SAY.exampleLabel(example);
    button.title = SAY.exampleTitle(example);
    button.addEventListener("click", () => guarded(() => tryExample(example)));
    ui.examples.append(button);
  }
}

// ------------------------------------------------------------------ audio in

async function tryExample(example) {
  say(SAY.reading(example.file), "info");
  const bytes = await (await fetch(new URL(`examples/${example.file}`, HERE))).arrayBuffer();
  let audio;
  try {   // decodeAudioData resamples to the context's rate: 8 kHz
    audio = await new OfflineAudioContext(1, 1, constants.sample_rate).decodeAudioData(bytes);
  } catch (error) {
    say(SAY.unreadable(example.file, reason(error)), "error");
    return;
  }
  await transcribeAndShow(mono(audio), SAY.exampleSaid(example));
}

function mono(audio) {
  const out = new Float32Array(audio.length);
  for (let c = 0; c < audio.numberOfChannels; c++) {
    const channel = audio.getChannelData(c);
    for (let i = 0; i < out.length; i++) out[i] += channel[i] / audio.numberOfChannels;
  }
  return out;
}

async function resample(samples, rate) {
  // the browser's own resampler: render the recording into an 8 kHz OfflineAudioContext
  const target = constants.sample_rate;
  if (rate === target) return samples;
  const context = new OfflineAudioContext(1, Math.max(1, Math.round(samples.length * target / rate)), target);
  const buffer = context.createBuffer(1, samples.length, rate);
  buffer.copyToChannel(samples, 0);
  const source = context.createBufferSource();
  source.buffer = buffer;
  source.connect(context.destination);
  source.start();
  return (await context.startRendering()).getChannelData(0);
}

async function startRecording() {
  if (!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia)) {
    say(SAY.noMicrophone, "error");
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia(
      { audio: { echoCancellation: false, noiseSuppression: false, autoGainControl: false } });
  } catch (error) {
    say(microphoneSentence(error), "error");
    return;
  }
  const context = new AudioContext();
  await context.audioWorklet.addModule(new URL("capture.js", HERE));
  const source = context.createMediaStreamSource(stream);
  const capture = new AudioWorkletNode(context, "capture");
  const blocks = [];
  let samples = 0, peak = 0;
  recording = { stream, context, blocks, started: performance.now() };
  capture.port.onmessage = ({ data }) => {
    if (recording === null) return;
    blocks.push(data);
    samples += data.length;
    for (const x of data) peak = Math.max(peak, Math.abs(x));
    const seconds = samples / context.sampleRate;
    ui.level.value = Math.min(1, peak * 2);
    say(SAY.recording(seconds, window.sayIt.maxSeconds), "recording");
    if (seconds >= window.sayIt.maxSeconds) guarded(() => stopRecording(true));
  };
  source.connect(capture);
  capture.connect(context.destination);       // a worklet runs only when something pulls its output
  ui.record.disabled = true;
  ui.stop.disabled = false;
  ui.level.hidden = false;
  say(SAY.recordingStarted, "recording");
}

function microphoneSentence(error) {
  switch (error && error.name) {
    case "NotAllowedError":
    case "SecurityError":
      return SAY.refused;
    case "NotFoundError":
    case "OverconstrainedError":
      return SAY.notFound;
    case "NotReadableError":
    case "AbortError":
      return SAY.notReadable;
    default:
      return SAY.notOpened(reason(error));
  }
}

async function stopRecording(reachedLimit = false) {
  if (recording === null) return;
  const { stream, context, blocks } = recording;
  recording = null;
  ui.stop.disabled = true;
  ui.level.hidden = true;
  for (const track of stream.getTracks()) track.stop();
  const rate = context.sampleRate;
  await context.close();
  const total = blocks.reduce((n, b) => n + b.length, 0);
  const longest = window.sayIt.maxSeconds;
  const limit = Math.min(total, Math.round(longest * rate));
  const samples = new Float32Array(limit);
  let offset = 0;
  for (const block of blocks) {
    if (offset >= limit) break;
    samples.set(block.subarray(0, limit - offset), offset);
    offset += block.length;
  }
  const prefix = reachedLimit || total > limit
    ? SAY.stoppedAt(longest) : "";
  await transcribeAndShow(await resample(samples, rate), prefix);
}

// ------------------------------------------------------------------ checks and the recogniser

function problem(samples) {
  // one sentence for a recording the recogniser cannot use, or null
  const rate = constants.sample_rate;
  let peak = 0;
  for (const x of samples) peak = Math.max(peak, Math.abs(x));
  const dbfs = peak > 0 ? 20 * Math.log10(peak) : -Infinity;
  if (samples.length < constants.min_samples) {
    return SAY.tooShort((samples.length / rate).toFixed(2), (constants.min_samples / rate).toFixed(2));
  }
  if (dbfs < constants.silence_dbfs) {
    return SAY.silent;
  }
  if (dbfs < QUIET_DBFS) {
    return SAY.tooQuiet(Math.round(dbfs));
  }
  return null;
}

const nextPaint = () => new Promise((resolve) => setTimeout(resolve, 0));

async function transcribe(samples, onStep = () => {}) {
  // samples: Float32Array at 8 kHz -> {words, confidences, end, attention rows, features, seconds}
  const started = performance.now();
  const run = await encoder.run({ pcm: new ort.Tensor("float32", samples, [samples.length]) });
  const features = run.features, memory = run.memory;
  const steps = memory.dims[0];
  const result = { words: [], confidences: [], end: null, rows: [], features, steps, duration: samples.length / constants.sample_rate };
  await onStep(result);
  const prefix = [constants.bos];
  for (let u = 0; u <= steps; u++) {          // at most one symbol per encoder step, plus </s>
    const out = await decoder.run({ memory, prefix: new ort.Tensor("int64", BigInt64Array.from(prefix, BigInt), [prefix.length, 1]) });
    const probs = softmax(out.logits.data);
    let z = 0;
    for (let k = 1; k < probs.length; k++) if (probs[k] > probs[z]) z = k;
    result.rows.push(Float32Array.from(out.attention.data));
    if (z === constants.eos) {
      result.end = probs[z];
      await onStep(result);
      break;
    }
    prefix.push(z);
    result.words.push(constants.tokens[z]);
    result.confidences.push(probs[z]);
    await onStep(result);
  }
  result.seconds = (performance.now() - started) / 1000;
  return result;
}

function softmax(logits) {
  let top = -Infinity;
  for (const x of logits) top = Math.max(top, x);
  const e = Array.from(logits, (x) => Math.exp(x - top));
  const total = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / total);
}

async function transcribeAndShow(samples, lead = "") {
  window.sayIt.last = null;
  const sentence = problem(samples);
  if (sentence) {
    say(lead + sentence, "error");
    return;
  }
  lastSamples = samples;
  setBusy(true);
  say(lead + SAY.listening, "info");
  ui.heard.replaceChildren();
  ui.took.textContent = "";
  const result = await transcribe(samples, async (partial) => {
    showWords(partial);
    draw(partial);
    await nextPaint();
  });
  last = result;
  window.sayIt.last = { text: result.words.join(" "), confidences: result.confidences, end: result.end,
                        seconds: result.seconds, steps: result.steps, rows: result.rows.length };
  say(lead + (result.words.length ? SAY.heard(result.words.join(" ")) : SAY.heardNothing), "done");
  ui.took.textContent = SAY.took(result.seconds.toFixed(2), result.duration.toFixed(2));
  setBusy(false);
}

// ------------------------------------------------------------------ drawing

function showWords(result) {
  ui.heard.replaceChildren(...result.words.map((word, i) => {
    const item = document.createElement("li");
    const confidence = result.confidences[i];
    item.innerHTML = `<span class="say-it-word"></span><span class="say-it-bar"><span></span></span>` +
                     `<span class="say-it-confidence"></span>`;
    item.querySelector(".say-it-word").textContent = word;
    item.querySelector(".say-it-bar span").style.width = `${Math.round(100 * confidence)}%`;
    item.querySelector(".say-it-confidence").textContent = confidence.toFixed(3);
    return item;
  }));
}

// two colour maps, as matplotlib's magma (spectrogram) and viridis (attention), in five stops
const MAGMA = [[0, 0, 4], [81, 18, 124], [183, 55, 121], [252, 137, 97], [252, 253, 191]];
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function colour(map, v) {
  const x = Math.min(1, Math.max(0, v)) * (map.length - 1);
  const i = Math.min(map.length - 2, Math.floor(x)), f = x - i;
  return map[i].map((c, k) => Math.round(c + f * (map[i + 1][k] - c)));
}

const GUTTER = 56;   // CSS px on the left of both plots, for the row labels: their time axes align

function canvasFor(canvas, height) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.parentElement.clientWidth;
  canvas.style.height = `${height}px`;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(height * ratio);
  const context = canvas.getContext("2d");
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  return [context, width];
}

function draw(result) {
  const [T, M] = result.features.dims;
  const data = result.features.data;
  let high = -Infinity;
  for (const x of data) high = Math.max(high, x);
  const low = high - 12;           // the loudest 12 nepers (about 50 dB): silence does not wash it out
  // spectrogram: one column per 20 ms frame, mel bands upwards
  const image = new ImageData(T, M);
  for (let t = 0; t < T; t++) {
    for (let m = 0; m < M; m++) {
      const [r, g, b] = colour(MAGMA, (data[t * M + m] - low) / (high - low || 1));
      const p = 4 * ((M - 1 - m) * T + t);
      image.data.set([r, g, b, 255], p);
    }
  }
  const [top, width] = canvasFor(ui.spectrogram, 120);
  const plot = width - GUTTER;
  const bitmap = document.createElement("canvas");
  bitmap.width = T;
  bitmap.height = M;
  bitmap.getContext("2d").putImageData(image, 0, 0);
  top.imageSmoothingEnabled = false;
  top.drawImage(bitmap, GUTTER, 0, plot, 120);
  label(top, "mel", 60);
  // attention: one row per emitted symbol, one column per encoder step (4 frames)
  const names = [...result.words, ...(result.end !== null ? ["</s>"] : [])];
  const rowHeight = 22;
  const [bottom] = canvasFor(ui.attention, Math.max(1, result.rows.length) * rowHeight + 18);
  const stepWidth = (plot * constants.stack) / T;
  let most = 0;
  for (const row of result.rows) for (const a of row) most = Math.max(most, a);
  result.rows.forEach((row, u) => {
    for (let t = 0; t < row.length; t++) {
      const [r, g, b] = colour(VIRIDIS, row[t] / (most || 1));
      bottom.fillStyle = `rgb(${r},${g},${b})`;
      bottom.fillRect(GUTTER + t * stepWidth, u * rowHeight, Math.ceil(stepWidth), rowHeight - 1);
    }
    label(bottom, names[u] || "", u * rowHeight + rowHeight / 2);
  });
  // a time axis in seconds under the map
  bottom.fillStyle = getComputedStyle(ui.attention).color;
  bottom.font = "11px sans-serif";
  bottom.textBaseline = "top";
  const seconds = T / constants.frame_rate;
  for (let s = 0; s <= seconds; s += seconds > 6 ? 2 : seconds > 3 ? 1 : 0.5) {
    const x = GUTTER + (s / seconds) * plot;
    bottom.fillText(`${s} s`, Math.min(x, width - 24), result.rows.length * rowHeight + 3);
  }
}

function label(context, text, y) {
  context.fillStyle = getComputedStyle(ui.attention).color;
  context.font = "12px sans-serif";
  context.textBaseline = "middle";
  context.textAlign = "right";
  context.fillText(text, GUTTER - 6, y);
  context.textAlign = "left";
}

// ------------------------------------------------------------------ playing back

async function playBack() {
  if (lastSamples === null) return;
  if (player) await player.close();
  player = new AudioContext();
  const buffer = player.createBuffer(1, lastSamples.length, constants.sample_rate);
  buffer.copyToChannel(lastSamples, 0);
  const source = player.createBufferSource();
  source.buffer = buffer;
  source.connect(player.destination);
  source.start();
}

// ------------------------------------------------------------------ wiring

async function guarded(action) {
  // every action ends in a sentence on the page, never in an uncaught error
  try {
    await action();
  } catch (error) {
    say(SAY.wentWrong(reason(error)), "error");
    setBusy(false);
  }
}

// for the tests and benchmarks/say_it.py: the last result, the load time, a transcription of samples,
// the page's language and its sentences
window.sayIt = { last: null, loadSeconds: null, maxSeconds: MAX_SECONDS, language: LANGUAGE, sentences: SAY };
window.sayIt.ready = new Promise((resolve) => { window.sayIt.resolveReady = resolve; });
window.sayIt.transcribe = async (samples) => {
  await transcribeAndShow(Float32Array.from(samples));
  return window.sayIt.last;
};
window.sayIt.problem = (samples) => problem(Float32Array.from(samples));

ui.record.addEventListener("click", () => guarded(startRecording));
ui.stop.addEventListener("click", () => guarded(() => stopRecording(false)));
ui.play.addEventListener("click", () => guarded(playBack));
window.addEventListener("resize", () => last && draw(last));
guarded(load);
