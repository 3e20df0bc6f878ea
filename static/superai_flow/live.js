// Live updates for the pages, without a build step: one WebSocket per page that reconnects by itself
// with exponential backoff and resumes from its cursor, so nothing written meanwhile is lost. A
// connection's cursors count once it has received `resumed` (docs/live-updates.md): a live message can
// come before the replay of what it missed, and resuming past it after a drop would skip that replay.

const LABELS = { connecting: "Connecting…", live: "Live", reconnecting: "Reconnecting…", offline: "Offline" };
// Closing codes that retrying will not fix (signed out, forbidden, gone).
const FINAL = new Set([4401, 4403, 4404]);

export function connectFeed({ path, cursor, indicator, onMessage }) {
  let socket = null;
  let delay = 500;
  let lastCursor = cursor; // where the next connection resumes from
  let latest = null; // the newest cursor of this connection
  let resumed = false; // whether this connection has received `resumed`

  const show = (state, text = LABELS[state]) => {
    indicator.dataset.state = state;
    indicator.textContent = text;
  };

  const open = () => {
    show(socket ? "reconnecting" : "connecting");
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    socket = new WebSocket(`${scheme}//${location.host}${path}`);
    socket.addEventListener("open", () => {
      delay = 500;
      show("live");
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
    socket.addEventListener("close", (event) => {
      if (FINAL.has(event.code)) {
        show("offline", event.code === 4401 ? "Signed out: reload to sign in" : "Offline");
        return;
      }
      show("reconnecting");
      setTimeout(open, delay + Math.random() * delay * 0.3);
      delay = Math.min(delay * 2, 15000);
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
