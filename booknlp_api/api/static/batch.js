// A corpus: an archive of books (.zip, .tar.gz) goes to POST /v1/batches, which makes one job per book; the
// batch is polled (GET /v1/batches/{id}) until every book has ended, then each book can be explored.
import { api, ApiError, apiJson, el, saveResponse, show, showError } from "./http.js";

const POLL_MS = 1000;
const $ = (id) => document.getElementById(id);

export async function submitBatch(form) {
  try {
    return await apiJson("/v1/batches", { method: "POST", body: form });
  } catch (error) {
    if (error.status === 404 || error.status === 405) {
      throw new ApiError(error.status, "no_batches", "this service takes no archives of books (it has no "
        + "POST /v1/batches): submit the books one by one");
    }
    throw error;
  }
}

// Shows the batch's progress until it has finished; onExplore(job) opens one book's result.
export async function followBatch(batch, onExplore) {
  for (;;) {
    showBatch(batch, onExplore);
    if (batch.finished) return batch;
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
    batch = await apiJson(`/v1/batches/${encodeURIComponent(batch.id)}`);
  }
}

function showBatch(batch, onExplore) {
  const counted = Object.entries(batch.counts).filter(([, n]) => n > 0).map(([status, n]) => `${n} ${status}`);
  $("job-status").textContent = `${batch.books} books: ${counted.join(", ")}`;
  const fraction = batch.finished ? 1 : batch.fraction;
  $("progress-bar").value = fraction;
  $("progress-percent").textContent = `${Math.round(fraction * 100)}%`;
  $("progress-eta").textContent = batch.eta_seconds && !batch.finished
    ? `about ${Math.ceil(batch.eta_seconds)} s left` : "";
  show($("cancel-button"), !batch.finished);
  $("stages").replaceChildren(...batch.jobs.map(({ name, job }) => {
    const done = job.status === "succeeded" ? 1 : job.progress ? job.progress.fraction : 0;
    const item = el("li", `${name}: ${job.status} (${Math.round(done * 100)}%) `, `stage book ${job.status}`);
    if (job.status === "succeeded") {
      const button = el("button", "Explore");
      button.type = "button";
      button.onclick = () => onExplore(job);
      item.append(button);
    }
    return item;
  }));
  show($("batch-downloads"), batch.finished);
  for (const button of document.querySelectorAll("#batch-downloads button")) {
    button.onclick = () => downloadBatch(batch, button.dataset.format);
  }
}

async function downloadBatch(batch, format) {
  showError($("job-error"), null);
  try {
    const response = await api(`/v1/batches/${encodeURIComponent(batch.id)}/result?format=${format}`);
    await saveResponse(response, `batch-${batch.id}.${format}`);
  } catch (error) {
    showError($("job-error"), error);
  }
}
