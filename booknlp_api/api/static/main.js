// The page's flow: key (when the service asks for one) → options from GET /v1/info → submission → live
// progress → the result explored.
import { followBatch } from "./batch.js";
import { renderResult } from "./explore.js";
import { follow } from "./follow.js";
import { api, apiJson, el, saveKey, savedKey, show, showError } from "./http.js";
import { submitBook } from "./submit.js";

const $ = (id) => document.getElementById(id);
let info = null;
let cancelPath = null;

async function start() {
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    saveKey($("key-input").value.trim());
    loadInfo();
  });
  $("submit-form").addEventListener("submit", (event) => {
    event.preventDefault();
    submit();
  });
  $("model-select").addEventListener("change", noteModel);
  $("cancel-button").addEventListener("click", cancel);
  wireFileInput();
  await loadInfo();
}

// GET /v1/info tells whether a key is needed (401) and which models, pipes and precisions there are.
async function loadInfo() {
  try {
    info = await apiJson("/v1/info");
  } catch (error) {
    const needsKey = error.status === 401;
    show($("key-section"), needsKey);
    showError($("key-error"), needsKey && savedKey() ? error : null);
    show($("submit-section"), false);
    if (!needsKey) showError($("submit-error"), error);
    return;
  }
  show($("key-section"), false);
  fillOptions(info);
  show($("submit-section"), true);
}

function fillOptions({ models, default_model: defaultModel, pipes, precisions, default_precision: precision }) {
  const modelSelect = $("model-select");
  modelSelect.replaceChildren(...models.map((m) => {
    const option = new Option(m.synthetic ? `${m.name} (synthetic)` : m.name, m.name);
    option.dataset.synthetic = String(m.synthetic);
    option.selected = m.name === defaultModel;
    return option;
  }));
  $("precision-select").replaceChildren(...precisions.map((p) => {
    const option = new Option(p.name, p.name);
    option.title = p.description;
    option.selected = p.name === precision;
    return option;
  }));
  const fieldset = $("pipes");
  fieldset.replaceChildren(el("legend", "Pipeline"));
  for (const pipe of pipes) {
    const label = el("label", null, "inline");
    const box = el("input");
    box.type = "checkbox";
    box.name = "pipe";
    box.value = pipe;
    box.checked = true;
    label.append(box, document.createTextNode(` ${pipe}`));
    fieldset.append(label);
  }
  noteModel();
}

function noteModel() {
  const option = $("model-select").selectedOptions[0];
  const synthetic = option && option.dataset.synthetic === "true";
  $("model-note").textContent = synthetic ? "This model has random weights (for testing): its results are "
    + "linguistically meaningless." : "";
  show($("model-note"), synthetic);
}

function wireFileInput() {
  const input = $("file-input");
  const zone = $("drop-zone");
  const named = () => {
    $("file-name").textContent = input.files.length ? `${input.files[0].name} (the pasted text is ignored)` : "";
  };
  input.addEventListener("change", named);
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("over");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("over");
    if (event.dataTransfer.files.length) {
      input.files = event.dataTransfer.files;
      named();
    }
  });
}

async function submit() {
  const button = $("submit-button");
  showError($("submit-error"), null);
  button.disabled = true;
  try {
    const submitted = await submitBook({
      file: $("file-input").files[0] || null,
      text: $("text-input").value,
      bookId: $("book-id-input").value.trim(),
      model: $("model-select").value,
      precision: $("precision-select").value,
      pipeline: [...document.querySelectorAll("input[name=pipe]:checked")].map((box) => box.value),
      stripGutenberg: $("gutenberg-input").checked,
    });
    if (submitted.batch) await watchBatch(submitted.batch);
    else await watch(submitted);
  } catch (error) {
    showError($("submit-error"), error);
  } finally {
    button.disabled = false;
  }
}

function startWatching(path) {
  cancelPath = path;
  show($("result-section"), false);
  show($("batch-downloads"), false);
  showError($("job-error"), null);
  show($("progress-section"), true);
}

async function watch(job) {
  startWatching(`/v1/jobs/${encodeURIComponent(job.id)}`);
  showJob(job);
  const finished = await follow(job.id, showJob);
  if (finished.status === "succeeded") {
    await explore(finished);
  } else if (finished.status === "failed") {
    showError($("job-error"), finished.error ? `${finished.error.code}: ${finished.error.message}` : "failed");
  }
}

async function watchBatch(batch) {
  startWatching(`/v1/batches/${encodeURIComponent(batch.id)}`);
  await followBatch(batch, (job) => explore(job).catch((error) => showError($("job-error"), error)));
}

async function explore(job) {
  renderResult(await apiJson(`/v1/jobs/${encodeURIComponent(job.id)}/result`), job);
  $("result-section").scrollIntoView();
}

function showJob(job) {
  const progress = job.progress;
  const fraction = job.status === "succeeded" ? 1 : progress ? progress.fraction : 0;
  $("job-status").textContent = job.status === "queued" && job.queue_position
    ? `queued (place ${job.queue_position})` : job.cached ? `${job.status} (cached result)` : job.status;
  $("progress-bar").value = fraction;
  $("progress-percent").textContent = `${Math.round(fraction * 100)}%`;
  $("progress-eta").textContent = progress && progress.eta_seconds && job.status === "running"
    ? `about ${Math.ceil(progress.eta_seconds)} s left` : "";
  show($("cancel-button"), job.status === "queued" || job.status === "running");
  if (progress) {
    $("stages").replaceChildren(...progress.stages.map((stage) => el("li",
      `${stage.name}: ${stage.status === "running" ? `${Math.round(stage.fraction * 100)}%` : stage.status}` +
      `${stage.seconds !== null ? ` (${stage.seconds.toFixed(1)} s)` : ""}`, `stage ${stage.status}`)));
  }
}

async function cancel() {
  if (!cancelPath) return;
  try {
    await api(cancelPath, { method: "DELETE" });
  } catch (error) {
    showError($("job-error"), error);
  }
}

start();
