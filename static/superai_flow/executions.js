// Execution history: the newest task outputs arrive in the side panel; rows keep their counts and
// statuses current.
import { connectFeed, formatTime, setBadge } from "./live.js";

const root = document.querySelector("[data-summary-feed]");
const recent = root.querySelector("[data-recent]");
const template = document.getElementById("recent-item");
const KEEP = 15;
const refreshing = new Map();

function showOutput(data) {
  recent.querySelector("[data-empty]")?.remove();
  const item = template.content.firstElementChild.cloneNode(true);
  item.dataset.outputId = data.id;
  const link = item.querySelector("a");
  link.href = `/executions/${data.flow_execution_id}/`;
  link.textContent = data.task_name;
  setBadge(item.querySelector(".badge"), data.status);
  item.querySelector(".meta").textContent = `${formatTime(data.created_at).slice(11)} UTC`;
  const existing = recent.querySelector(`[data-output-id="${data.id}"]`);
  if (data.status === "deleted") existing?.remove();
  else if (existing) existing.replaceWith(item);
  else recent.prepend(item);
  while (recent.children.length > KEEP) recent.lastElementChild.remove();
}

// A row's count and status come from the API (debounced), so replays and repeats never skew them.
function refreshRow(flowId) {
  const row = root.querySelector(`[data-flow-id="${flowId}"]`);
  if (!row || refreshing.has(flowId)) return;
  refreshing.set(flowId, setTimeout(async () => {
    refreshing.delete(flowId);
    const response = await fetch(`/api/v1/flow-executions/${flowId}`, { credentials: "same-origin" });
    if (!response.ok) return;
    const flow = await response.json();
    row.querySelector("[data-count]").textContent = String(flow.task_output_count);
    setBadge(row.querySelector("[data-status]"), flow.status);
  }, 300));
}

connectFeed({
  path: root.dataset.summaryFeed,
  cursor: root.dataset.cursor,
  indicator: document.querySelector("[data-connection]"),
  onMessage(message) {
    if (message.type === "task_output.summary") {
      showOutput(message.data);
      refreshRow(message.data.flow_execution_id);
    } else if (message.type === "flow_execution.updated") {
      const row = root.querySelector(`[data-flow-id="${message.data.id}"]`);
      if (row) setBadge(row.querySelector("[data-status]"), message.data.status);
    }
  },
});
