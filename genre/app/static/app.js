// The genre app's page: send one song, show what the model says of it. Everything is drawn here, from the
// JSON of /api/classify (no library, nothing from another host); every text from the server is set as text.
"use strict";

const PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3", "#8c8c8c",
                 "#ccb974", "#64b5cd", "#1b9e77", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#7570b3"];
const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
let genreColours = {};

function element(tag, text, className) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) node.textContent = text;
  if (className) node.className = className;
  return node;
}

function svgElement(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  return node;
}

const percent = (p) => (100 * p).toFixed(1) + " %";

async function loadFacts() {
  const response = await fetch("/api/run");
  const facts = await response.json();
  facts.genres.forEach((g, i) => { genreColours[g] = PALETTE[i % PALETTE.length]; });
  const accuracy = facts.test_track_acc === null ? "not known" : percent(facts.test_track_acc) + " of test tracks";
  $("run-line").textContent = `${facts.model} on ${facts.features} features, trained on ${facts.dataset}: ` +
    `test accuracy ${accuracy}`;
  const rows = [
    ["model", facts.model], ["features", facts.features], ["dataset", facts.dataset],
    ["split protocol", facts.split_protocol],
    ["test accuracy (tracks)", facts.test_track_acc === null ? "not known" : percent(facts.test_track_acc)],
    ["test accuracy (clips)", facts.test_acc === null ? "not known" : percent(facts.test_acc)],
    ["genres", facts.genres.join(", ")], ["windows", `${facts.clip_seconds} s, ${facts.aggregation} over the track`],
    ["served", facts.named],
  ];
  const box = $("facts");
  box.replaceChildren();
  for (const [name, value] of rows) {
    const cell = element("div", null);
    cell.append(element("span", name), element("b", String(value)));
    box.append(cell);
  }
  const link = element("div", null);
  link.append(element("span", "in MLflow"));
  if (facts.run_url) {
    const a = element("a", "open the run");
    a.href = facts.run_url;
    a.target = "_blank";
    a.rel = "noopener";
    link.append(a);
  } else if (facts.ui_command) {
    link.append(element("code", facts.ui_command));
  } else {
    link.append(element("b", "no run recorded"));
  }
  box.append(link);
  const trained = $("trained");
  trained.hidden = !facts.trained_on_warning;
  trained.textContent = facts.trained_on_warning ? `Note: ${facts.trained_on_warning}.` : "";
  $("limits").textContent = `any format evaluate.py takes (WAV, AU, FLAC, OGG, MP3), up to ` +
    `${facts.limits.max_upload_mb} MB and ${facts.limits.max_seconds} s`;
}

function showError(message) {
  $("status").hidden = true;
  $("error").hidden = false;
  $("error").textContent = message;
}

function send(files) {
  $("error").hidden = true;
  $("result").hidden = true;
  $("status").hidden = false;
  $("progress").removeAttribute("value");
  $("status-text").textContent = "uploading…";
  const form = new FormData();
  for (const file of files) form.append("file", file, file.name);
  const request = new XMLHttpRequest();
  request.open("POST", "/api/classify");
  request.responseType = "json";
  request.upload.onprogress = (event) => {
    if (event.lengthComputable) {
      $("progress").max = event.total;
      $("progress").value = event.loaded;
      $("status-text").textContent = `uploading… ${Math.round(100 * event.loaded / event.total)} %`;
    }
  };
  request.upload.onload = () => {
    $("progress").removeAttribute("value");
    $("status-text").textContent = "decoding and classifying…";
  };
  request.onload = () => {
    const body = request.response;
    if (request.status >= 200 && request.status < 300 && body) {
      $("status").hidden = true;
      show(body);
    } else {
      showError((body && body.detail) ? `${body.detail}` : `the app answered HTTP ${request.status}`);
    }
  };
  request.onerror = () => showError("the app cannot be reached: is it still running?");
  request.send(form);
}

function show(result) {
  $("result").hidden = false;
  $("top-genre").textContent = result.ranking[0].genre;
  $("song-line").textContent = `${result.file}: ${result.seconds.toFixed(1)} s, ` +
    `${result.windows.starts.length} window(s) of ${result.windows.seconds} s`;
  const padded = $("padded");
  padded.hidden = !(result.padded_seconds > 0);
  padded.textContent = result.padded_seconds > 0 ? `The song is shorter than one window: it was padded with ` +
    `${result.padded_seconds.toFixed(2)} s of silence, so the answer rests on ${result.seconds.toFixed(2)} s of audio.` : "";
  drawBars(result.ranking);
  drawTimeline(result);
  drawPicture(result);
  drawSimilar(result);
}

function drawBars(ranking) {
  const box = $("bars");
  box.replaceChildren();
  for (const { genre, probability } of ranking) {
    const row = element("div", null, "bar");
    row.dataset.genre = genre;
    const track = element("div", null, "track");
    const fill = element("div", null, "fill");
    fill.style.width = `${Math.max(0.5, 100 * probability)}%`;
    fill.style.background = genreColours[genre] || "#888";
    track.append(fill);
    row.append(element("span", genre, "genre"), track, element("span", percent(probability), "value"));
    box.append(row);
  }
}

function drawTimeline(result) {
  const { starts, seconds, probabilities } = result.windows;
  const total = Math.max(result.seconds, starts[starts.length - 1] + seconds);
  const width = 1000, height = 150, top = 4, bottom = 22;
  const svg = svgElement("svg", { viewBox: `0 0 ${width} ${height}`, preserveAspectRatio: "none", role: "img",
                                  "aria-label": "genre probabilities of each window over the track" });
  const x = (t) => (width * t) / total;
  starts.forEach((start, i) => {
    // a column from this window's start to the next one's (the last to its own end)
    const end = i + 1 < starts.length ? starts[i + 1] : start + seconds;
    let y = top;
    result.genres.forEach((genre, g) => {
      const h = (height - top - bottom) * probabilities[i][g];
      const rect = svgElement("rect", { x: x(start), y, width: Math.max(1, x(end) - x(start) - 1), height: h,
                                        fill: genreColours[genre] || "#888" });
      const tip = svgElement("title", {});
      tip.textContent = `${start.toFixed(1)}–${(start + seconds).toFixed(1)} s: ${genre} ${percent(probabilities[i][g])}`;
      rect.append(tip);
      svg.append(rect);
      y += h;
    });
  });
  const ticks = Math.min(10, Math.max(1, Math.floor(total / 5)));
  for (let k = 0; k <= ticks; k++) {
    const t = (total * k) / ticks;
    const label = svgElement("text", { x: Math.min(width - 24, Math.max(0, x(t) - 8)), y: height - 6,
                                       "font-size": 12, fill: "#5d6677" });
    label.textContent = `${t.toFixed(0)} s`;
    svg.append(label);
  }
  $("timeline").replaceChildren(svg);
  const legend = $("legend");
  legend.replaceChildren();
  for (const genre of result.genres) {
    const item = element("span", null);
    const swatch = element("i", null);
    swatch.style.background = genreColours[genre] || "#888";
    item.append(swatch, document.createTextNode(genre));
    legend.append(item);
  }
}

function drawPicture(result) {
  const features = result.features;
  $("features-title").textContent = `What the model hears: its ${features.label}`;
  $("features").src = features.image;
  $("features-line").textContent = `${features.bands} bands over ${features.seconds.toFixed(1)} s, low bands at the ` +
    `bottom; the boxes are the windows the model classified`;
  const marks = $("window-marks");
  marks.replaceChildren();
  marks.setAttribute("viewBox", "0 0 1000 200");
  marks.setAttribute("preserveAspectRatio", "none");
  const total = features.seconds;
  result.windows.starts.forEach((start, i) => {
    const lane = i % 2;   // overlapping windows on alternate lanes, so each box shows
    marks.append(svgElement("rect", { x: (1000 * start) / total + 1, y: 3 + lane * 6,
                                      width: Math.max(2, (1000 * result.windows.seconds) / total - 2),
                                      height: 194 - lane * 12, fill: "none", stroke: "#ffffff",
                                      "stroke-width": 2, "stroke-dasharray": lane ? "6 4" : "none",
                                      "vector-effect": "non-scaling-stroke" }));
  });
}

function drawSimilar(result) {
  const body = $("similar").querySelector("tbody");
  body.replaceChildren();
  $("similar-line").textContent = result.similar_problem ? result.similar_problem :
    "nearest tracks of the run's corpus in the model's learned embedding (cosine distance), each playing the " +
    "excerpt the model was given";
  for (const row of result.similar) {
    const tr = element("tr", null);
    tr.className = row.available ? "similar-track" : "similar-track unavailable";
    tr.append(element("td", row.distance.toFixed(3), "num"), element("td", row.genre), element("td", row.split),
              element("td", row.track_id));
    const listen = element("td", null);
    if (row.available) {
      const audio = element("audio", null);
      audio.controls = true;
      audio.preload = "metadata";
      audio.src = `/api/audio?track=${encodeURIComponent(row.track_id)}`;
      listen.append(audio);
    } else {
      listen.textContent = `unavailable: ${row.reason}`;
    }
    tr.append(listen);
    body.append(tr);
  }
}

const input = $("file");
input.addEventListener("change", () => { if (input.files.length) send(input.files); });
const drop = $("drop");
drop.addEventListener("dragover", (event) => { event.preventDefault(); drop.classList.add("over"); });
drop.addEventListener("dragleave", () => drop.classList.remove("over"));
drop.addEventListener("drop", (event) => {
  event.preventDefault();
  drop.classList.remove("over");
  if (event.dataTransfer.files.length) send(event.dataTransfer.files);
});
loadFacts().catch(() => showError("the run's facts could not be read: is the app still running?"));
