// Live updates for the pages, without a build step. One WebSocket per page that reconnects by itself
// with exponential backoff and resumes from its cursor, so nothing written meanwhile is lost. A
// connection's cursors count once it has received `resumed` (docs/live-updates.md): a live message can
// come before the replay of what it missed, and resuming past it after a drop would skip that replay.
// Where WebSockets cannot connect at all (a proxy that drops them), the page switches to the same feed
// as Server-Sent Events (EventSource), resuming from the same cursor; the indicator says which it uses.

const LABELS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
const TRANSPORTS = { websocket: "WebSocket", sse: "Server-Sent Events" };
// Closing codes that retrying will not fix (signed out, forbidden, gone).
const FINAL = new Set([4401, 4403, 4404]);
// WebSocket attempts that fail before opening, in a row, after which the page uses the event stream.
const FAILURES_BEFORE_FALLBACK = 2;
const EVENTS = ["task_output.created", "task_output.updated", "task_output.summary", "flow_execution.updated"];

async function serverAnswers() {
  const response = await fetch("/healthz", { cache: "no-store" }).catch(() => null);
  return Boolean(response && response.ok);
}

// The event stream of a WebSocket feed's path: the flow feed by flow_execution_id, the summary feed
// with the same filters.
function streamUrl(path, cursor) {
  const url = new URL(path, location.origin);
  const flow = url.pathname.match(/^\/ws\/flow-executions\/([^/]+)\/$/);
  const stream = new URL("/api/v1/task-outputs/stream", location.origin);
  if (flow) stream.searchParams.set("flow_execution_id", flow[1]);
  else stream.search = url.search;
  if (cursor) stream.searchParams.set("after", cursor); // EventSource's own Last-Event-ID wins on reconnects
  return stream;
}

export function connectFeed({ path, cursor, indicator, onMessage }) {
  let socket = null;
  let delay = 500;
  let failures = 0; // WebSocket attempts in a row that never opened
  let lastCursor = cursor; // where the next connection resumes from
  let latest = null; // the newest cursor of this connection
  let resumed = false; // whether this connection has received `resumed`

  const show = (state, transport = null, text = LABELS[state]) => {
    indicator.dataset.state = state;
    if (transport) indicator.dataset.transport = transport;
    indicator.textContent = state === "live" ? `${text} · ${TRANSPORTS[transport]}` : text;
    indicator.title = transport ? `Live updates over ${TRANSPORTS[transport]}` : "";
  };

  const retry = (reopen) => {
    setTimeout(reopen, delay + Math.random() * delay * 0.3);
    delay = Math.min(delay * 2, 15000);
  };

  const open = () => {
    show(socket ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${path}`);
    let opened = false;
    socket.addEventListener("open", () => {
      opened = true;
      delay = 500;
      failures = 0;
      show("live", "websocket");
      latest = null;
      resumed = !lastCursor; // nothing to resume: every cursor counts at once
      if (lastCursor) socket.send(JSON.stringify({ type: "resume", after: lastCursor }));
    });
    socket.addEventListener("message", (event) => {
      const message = JSON.parse(event.data);
      if (message.cursor) latest = message.cursor;
      if (message.type === "resumed") resumed = true;
      if (resumed && latest) lastCursor = latest;
      if (message.type === "resync_required") location.reload();
      else if (message.type !== "heartbeat" && message.type !== "resumed") onMessage(message);
    });
    socket.addEventListener("close", async (event) => {
      if (FINAL.has(event.code)) {
        show("offline", null, event.code === 4401 ? "Signed out: reload to sign in" : "Offline");
        return;
      }
      show("reconnecting");
      failures = opened ? 0 : failures + 1;
      // WebSockets that never open while the server answers HTTP: something between drops them. (A server
      // that is down answers neither: keep trying WebSockets.)
      if (failures >= FAILURES_BEFORE_FALLBACK && (await serverAnswers())) {
        delay = 500;
        openStream();
        return;
      }
      retry(open);
    });
  };

  // Server-Sent Events: EventSource reconnects by itself with Last-Event-ID, the last cursor it saw (the
  // server holds live events back until a replay is done, so that one is always safe to resume from).
  // When the server refuses it (signed out, say), EventSource gives up; a probe of the API tells whether to
  // say so or to try again later.
  const openStream = () => {
    show("reconnecting", "sse");
    const source = new EventSource(streamUrl(path, lastCursor));
    source.addEventListener("open", () => {
      delay = 500;
      show("live", "sse");
    });
    for (const type of EVENTS) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) lastCursor = event.lastEventId;
        onMessage({ type, cursor: event.lastEventId || null, data: JSON.parse(event.data) });
      });
    }
    source.addEventListener("resync_required", () => location.reload());
    source.addEventListener("error", async () => {
      if (source.readyState !== EventSource.CLOSED) {
        show("reconnecting", "sse");
        return;
      }
      if (source.lastEventId) lastCursor = source.lastEventId;
      const probe = await fetch("/api/v1/task-outputs?page_size=1&fields=id", { credentials: "same-origin" })
        .catch(() => null);
      if (probe && (probe.status === 401 || probe.status === 403)) {
        show("offline", null, "Signed out: reload to sign in");
        return;
      }
      show("reconnecting", "sse");
      retry(openStream);
    });
  };

  open();
}

// Timestamps as the pages print them: "2026-01-31 12:00:00" in UTC.
export function formatTime(iso) {
  return iso ? iso.replace("T", " ").slice(0, 19) : "—";
}

export function setBadge(badge, status) {
  badge.className = `badge ${status}`;
  badge.textContent = status.split("_").map((word) => word[0].toUpperCase() + word.slice(1)).join(" ");
}
