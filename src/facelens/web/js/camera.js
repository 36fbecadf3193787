// The Camera tab: this device's camera, a frame sent to /v1/recognize a few times a second and
// the faces found drawn over the live picture.

import { api, imageBody } from "./api.js";
import { $ } from "./dom.js";
import { clearErrors, showError } from "./messages.js";
import { listed, nameText } from "./text.js";

const camera = { stream: null, running: false, faces: [], scale: 1, done: [] };

function drawCamera() {
  if (!camera.running) return;
  const video = $("camera-video");
  const canvas = $("camera-canvas");
  const context = canvas.getContext("2d");
  if (video.videoWidth) {
    if (canvas.width !== video.videoWidth) {
      canvas.width = video.videoWidth;
      canvas.height = video.videoHeight;
    }
    context.drawImage(video, 0, 0);
    context.lineWidth = Math.max(2, canvas.width / 200);
    context.font = `${Math.max(14, canvas.width / 40)}px system-ui, sans-serif`;
    for (const face of camera.faces) {
      const b = face.box;
      const s = camera.scale;
      const colour = face.name === "unknown" ? "#c62828" : "#1a7f37";
      context.strokeStyle = colour;
      context.strokeRect(b.left * s, b.top * s, (b.right - b.left) * s, (b.bottom - b.top) * s);
      const label = nameText(face.name);
      const w = context.measureText(label).width + 8;
      const h = Math.max(14, canvas.width / 40) + 6;
      context.fillStyle = colour;
      context.fillRect(b.left * s, b.bottom * s, w, h);
      context.fillStyle = "#fff";
      context.fillText(label, b.left * s + 4, b.bottom * s + h - 6);
    }
  }
  requestAnimationFrame(drawCamera);
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function sendFrames() {
  const video = $("camera-video");
  const grab = document.createElement("canvas");
  while (camera.running) {
    const started = performance.now();
    if (video.videoWidth) {
      const scale = Math.min(1, 640 / video.videoWidth); // a 640 px copy is enough to detect
      grab.width = Math.round(video.videoWidth * scale);
      grab.height = Math.round(video.videoHeight * scale);
      grab.getContext("2d").drawImage(video, 0, 0, grab.width, grab.height);
      const frame = await new Promise((resolve) => grab.toBlob(resolve, "image/jpeg", 0.85));
      try {
        const answer = await api("POST", "/v1/recognize", imageBody(frame));
        if (!camera.running) break;
        camera.faces = answer.faces;
        camera.scale = 1 / scale;
        const names = answer.faces.map((f) => f.name);
        const shown = $("camera-faces");
        shown.dataset.faces = String(names.length);
        const seen = names.length ? [`${names.length} in view: `, ...listed(names)] : [];
        shown.replaceChildren(...(seen.length ? seen : ["No face in view."]));
        const now = performance.now();
        camera.done = camera.done.filter((t) => now - t < 3000).concat(now);
        const span = camera.done.length > 1 ? (now - camera.done[0]) / 1000 : 0;
        $("camera-fps").value = (span ? (camera.done.length - 1) / span : 0).toFixed(1) + " fps";
      } catch (error) {
        if (error.status === 503 || error.status === 429) {
          // Busy: this frame is dropped and the next one goes at the usual time.
          $("camera-faces").textContent = "The server is busy; frames are being dropped.";
        } else {
          showError("Camera: " + error.message);
          stopCamera();
          break;
        }
      }
    }
    const rate = Number($("camera-rate").value);
    const wait = 1000 / rate - (performance.now() - started);
    await sleep(Math.max(wait, 0));
  }
}

export async function startCamera() {
  clearErrors();
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    showError("This browser cannot use a camera here (it needs https or localhost).");
    return;
  }
  try {
    camera.stream = await navigator.mediaDevices.getUserMedia({
      video: { width: { ideal: 1280 } },
      audio: false,
    });
  } catch (error) {
    showError("The camera could not be started: " + error.message);
    return;
  }
  const video = $("camera-video");
  video.srcObject = camera.stream;
  await video.play();
  camera.running = true;
  camera.done = [];
  $("camera-start").disabled = true;
  $("camera-stop").disabled = false;
  $("camera").dataset.state = "running";
  requestAnimationFrame(drawCamera);
  sendFrames();
}

export function stopCamera() {
  camera.running = false;
  if (camera.stream) {
    for (const track of camera.stream.getTracks()) track.stop();
    camera.stream = null;
  }
  $("camera-video").srcObject = null;
  camera.faces = [];
  $("camera-start").disabled = false;
  $("camera-stop").disabled = true;
  $("camera-fps").value = "0.0 fps";
  $("camera").dataset.state = "stopped";
}
