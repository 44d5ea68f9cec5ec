// Following a job live. EventSource cannot send an Authorization header, so the Server-Sent Events of
// GET /v1/jobs/{id}/events are read with fetch() and parsed here; if the stream cannot be had (an old browser,
// a proxy that buffers or cuts it), GET /v1/jobs/{id} is polled instead.
import { api, apiJson } from "./http.js";

const FINISHED = new Set(["succeeded", "failed", "cancelled"]);
const POLL_MS = 1000;

// Calls onJob(job) with each state of the job; resolves with the finished job.
export async function follow(jobId, onJob) {
  let last = null;
  try {
    last = await streamEvents(jobId, (job) => {
      last = job;
      onJob(job);
    });
  } catch (error) {
    if (error.status === 404 || error.status === 401) throw error; // polling would fail the same way
  }
  if (last && FINISHED.has(last.status)) return last;
  return poll(jobId, onJob);
}

async function streamEvents(jobId, onJob) {
  const response = await api(`/v1/jobs/${encodeURIComponent(jobId)}/events`, {
    headers: { Accept: "text/event-stream" },
  });
  if (!response.body || !response.body.getReader) return null;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let job = null;
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return job;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event.data === null) continue; // a keep-alive comment
      job = JSON.parse(event.data);
      onJob(job);
      if (event.type === "end") {
        reader.cancel().catch(() => {});
        return job;
      }
    }
  }
}

// One event block of the text/event-stream format: `event:` names it, `data:` lines join with newlines.
export function parseEvent(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (line === "" || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  return { type, data: data.length ? data.join("\n") : null };
}

async function poll(jobId, onJob) {
  for (;;) {
    const job = await apiJson(`/v1/jobs/${encodeURIComponent(jobId)}`);
    onJob(job);
    if (FINISHED.has(job.status)) return job;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}
