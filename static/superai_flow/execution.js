// One flow execution's page: task outputs appear, change and disappear as they happen, and the timeline
// of its task executions keeps up.
import { connectFeed, formatTime, setBadge } from "./live.js";

const root = document.querySelector("[data-flow-feed]");
const list = document.getElementById("outputs");
const empty = root.querySelector("[data-empty]");
const count = root.querySelector("[data-output-count]");
const timeline = root.querySelector("[data-timeline]");
const REDRAW_EVERY = 4000; // ms, while the flow runs: new attempts send no live message of their own
let clockOffset = 0; // this browser's clock minus the server's, as of the last drawing
let redrawing = null;
let drawings = 0;

function refreshCount() {
  const shown = list.children.length;
  empty.hidden = shown > 0;
  if (Number(count.textContent) < shown) count.textContent = String(shown);
}

// The server renders a card the same way as in the page; the script only places it.
async function place(id, { fresh }) {
  const response = await fetch(`/executions/outputs/${id}/card/`, { credentials: "same-origin" });
  const existing = list.querySelector(`[data-output-id="${id}"]`);
  if (response.status === 404) {
    if (existing) {
      existing.remove();
      count.textContent = String(Math.max(0, Number(count.textContent) - 1));
    }
  } else if (response.ok) {
    const holder = document.createElement("template");
    holder.innerHTML = (await response.text()).trim();
    const card = holder.content.firstElementChild;
    if (existing) {
      existing.replaceWith(card);
    } else {
      if (fresh) card.classList.add("fresh");
      list.append(card);
      count.textContent = String(Number(count.textContent) + 1);
    }
  }
  refreshCount();
}

// "Show all" loads the whole output into the page instead of leaving it.
list.addEventListener("click", async (event) => {
  const link = event.target.closest("a.show-all");
  if (!link) return;
  event.preventDefault();
  const response = await fetch(link.href, { credentials: "same-origin" });
  if (response.ok) {
    link.closest("details").querySelector("pre").textContent = await response.text();
    link.parentElement.remove();
  }
});

function showFlow(flow) {
  setBadge(root.querySelector("[data-flow-status]"), flow.status);
  root.querySelector("[data-flow-started]").textContent = formatTime(flow.started_at);
  root.querySelector("[data-flow-completed]").textContent = formatTime(flow.completed_at);
}

// The server draws the timeline (task_outputs/pictures.py); this script only swaps it in.
function syncClock() {
  const svg = timeline.querySelector("svg[data-now]");
  if (svg) clockOffset = Date.now() - Number(svg.dataset.now);
}

function redrawTimeline() {
  if (redrawing) return;
  redrawing = setTimeout(async () => {
    redrawing = null;
    const drawing = ++drawings; // a slow answer never replaces a newer one
    try {
      const response = await fetch(timeline.dataset.timeline, { credentials: "same-origin" });
      const html = await response.text();
      if (response.ok && !response.redirected && drawing === drawings) {
        timeline.innerHTML = html;
        syncClock();
      }
    } catch {
      // offline: the connection indicator says so, and the next redraw catches up
    }
  }, 300);
}

// How long, as the server writes it (pictures._duration).
function duration(seconds) {
  if (seconds < 1) return `${Math.round(seconds * 1000)} ms`;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const pad = (n) => String(n).padStart(2, "0");
  if (seconds < 3600) return `${Math.floor(Math.round(seconds) / 60)} min ${pad(Math.round(seconds) % 60)} s`;
  const minutes = Math.round(seconds / 60);
  return `${Math.floor(minutes / 60)} h ${pad(minutes % 60)} min`;
}

// Between drawings, running attempts' bars grow to now (up to the picture's edge) and their durations count.
function grow() {
  const svg = timeline.querySelector("svg[data-now]");
  if (!svg) return;
  const now = Date.now() - clockOffset;
  for (const attempt of svg.querySelectorAll("[data-start]")) {
    const bar = attempt.querySelector(".bar");
    const seconds = (now - Number(attempt.dataset.start)) / 1000;
    const room = Number(svg.dataset.right) - Number(bar.getAttribute("x"));
    const width = Math.min(seconds * Number(svg.dataset.scale), room);
    if (width > Number(bar.getAttribute("width"))) bar.setAttribute("width", width.toFixed(1));
    attempt.querySelector("[data-duration]").textContent = duration(seconds);
  }
}

syncClock();
setInterval(grow, 1000);
setInterval(() => {
  if (timeline.querySelector("[data-live]")) redrawTimeline();
}, REDRAW_EVERY);

connectFeed({
  path: root.dataset.flowFeed,
  cursor: root.dataset.cursor,
  indicator: document.querySelector("[data-connection]"),
  onMessage(message) {
    if (message.type === "task_output.created" || message.type === "task_output.updated") {
      place(message.data.id, { fresh: message.type === "task_output.created" });
    } else if (message.type === "flow_execution.updated") {
      showFlow(message.data);
    }
    redrawTimeline();
  },
});
