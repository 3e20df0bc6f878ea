// One flow execution's page: task outputs appear, change and disappear as they happen.
import { connectFeed, formatTime, setBadge } from "./live.js";

const root = document.querySelector("[data-flow-feed]");
const list = document.getElementById("outputs");
const empty = root.querySelector("[data-empty]");
const count = root.querySelector("[data-output-count]");

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
  },
});
