// The draw-a-digit page: draw on the canvas (pointer events: mouse, touch, pen) or upload a file;
// each is sent to POST predict, and the answer is shown: digit, probabilities, the 28x28 image
// the network saw and its first feature maps. At most one request is in flight at a time.
"use strict";

const pad = document.getElementById("pad");
const padCtx = pad.getContext("2d");
const seen = document.getElementById("seen");
const digit = document.getElementById("digit");
const confidence = document.getElementById("confidence");
const error = document.getElementById("error");
const bars = document.getElementById("bars");
const maps = document.getElementById("maps");

const STROKE = 20; // pen width in canvas pixels (the canvas is 280 wide, 10x MNIST's 28)
let drawing = false;
let inked = false;
let busy = false;
let pending = null; // the newest image waiting while a request is in flight
let generation = 0; // bumped by Clear, so that answers about a cleared drawing are dropped

for (let d = 0; d < 10; d++) {
  bars.insertAdjacentHTML("beforeend",
    `<li><span>${d}</span><span class="track"><span class="bar"></span></span><span class="pct"></span></li>`);
}

function clearPad() {
  padCtx.fillStyle = "#fff";
  padCtx.fillRect(0, 0, pad.width, pad.height);
  inked = false;
  pending = null;
  generation++;
  showResult(null);
  showError("");
}

function point(event) {
  const box = pad.getBoundingClientRect();
  return [(event.clientX - box.left) * pad.width / box.width, (event.clientY - box.top) * pad.height / box.height];
}

pad.addEventListener("pointerdown", (event) => {
  drawing = true;
  pad.setPointerCapture(event.pointerId);
  const [x, y] = point(event);
  padCtx.strokeStyle = "#111";
  padCtx.lineWidth = STROKE;
  padCtx.lineCap = padCtx.lineJoin = "round";
  padCtx.beginPath();
  padCtx.moveTo(x, y);
  padCtx.lineTo(x, y);
  padCtx.stroke();
  inked = true;
});

pad.addEventListener("pointermove", (event) => {
  if (!drawing) return;
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [event];
  for (const e of events.length ? events : [event]) {
    const [x, y] = point(e);
    padCtx.lineTo(x, y);
  }
  padCtx.stroke();
  sendDrawing();
});

for (const type of ["pointerup", "pointercancel"]) {
  pad.addEventListener(type, () => {
    if (!drawing) return;
    drawing = false;
    sendDrawing();
  });
}

function sendDrawing() {
  if (inked) pad.toBlob((blob) => predict(blob, "drawing.png"), "image/png");
}

async function predict(blob, name) {
  if (busy) {
    pending = [blob, name];
    return;
  }
  busy = true;
  const asked = generation;
  try {
    const form = new FormData();
    form.append("file", blob, name);
    const response = await fetch("predict?feature_maps=true", { method: "POST", body: form });
    const answer = await response.json();
    if (asked !== generation) {
      // cleared meanwhile
    } else if (response.ok) {
      showError("");
      showResult(answer);
    } else {
      showResult(null);
      showError(typeof answer.detail === "string" ? answer.detail : `error ${response.status}`);
    }
  } catch (e) {
    showError(`the server did not answer (${e.message})`);
  } finally {
    busy = false;
  }
  if (pending) {
    const [nextBlob, nextName] = pending;
    pending = null;
    predict(nextBlob, nextName);
  }
}

function showError(message) {
  error.textContent = message;
  error.hidden = !message;
}

function paint(canvas, rows) {
  const side = rows.length;
  canvas.width = canvas.height = side;
  const ctx = canvas.getContext("2d");
  const image = ctx.createImageData(side, side);
  rows.flat().forEach((v, i) => {
    image.data.set([v, v, v, 255], 4 * i);
  });
  ctx.putImageData(image, 0, 0);
}

function showResult(answer) {
  const probabilities = answer ? answer.probabilities : new Array(10).fill(0);
  digit.textContent = answer ? answer.label : "?"; // the digit, or a Fashion-MNIST model's article
  confidence.textContent = answer ? `${(100 * probabilities[answer.digit]).toFixed(1)}% sure` : "";
  [...bars.children].forEach((li, d) => {
    li.classList.toggle("top", answer !== null && d === answer.digit);
    li.querySelector(".bar").style.width = `${100 * probabilities[d]}%`;
    li.querySelector(".pct").textContent = answer ? `${(100 * probabilities[d]).toFixed(1)}%` : "";
  });
  paint(seen, answer ? answer.image : [[0]]);
  maps.replaceChildren();
  for (const map of (answer && answer.feature_maps) || []) {
    const canvas = document.createElement("canvas");
    paint(canvas, map);
    maps.append(canvas);
  }
}

document.getElementById("clear").addEventListener("click", clearPad);

document.getElementById("upload").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  event.target.value = ""; // so that choosing the same file again sends it again
  if (!file) return;
  clearPad();
  try { // show the upload on the pad, fitted; the file itself is what is sent
    const bitmap = await createImageBitmap(file);
    const scale = Math.min(pad.width / bitmap.width, pad.height / bitmap.height);
    const [w, h] = [bitmap.width * scale, bitmap.height * scale];
    padCtx.drawImage(bitmap, (pad.width - w) / 2, (pad.height - h) / 2, w, h);
    inked = true;
  } catch {
    // not something the browser can show; the server says what is wrong with it
  }
  predict(file, file.name);
});

fetch("health")
  .then((response) => response.json())
  .then((health) => {
    document.getElementById("model").textContent =
      `Network: ${health.model}, ${health.parameters.toLocaleString("en")} parameters.`;
  })
  .catch(() => {});

clearPad();
