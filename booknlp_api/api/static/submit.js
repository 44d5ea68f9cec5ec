// A submission: pasted text or a dropped file (text, EPUB, HTML) goes to POST /v1/jobs as a multipart upload;
// an archive of books (.zip, .tar.gz) to POST /v1/batches, one job per book. Resolves with the job, or the batch
// as { batch }.
import { submitBatch } from "./batch.js";
import { ApiError, apiJson } from "./http.js";

const ARCHIVE = /\.(zip|tar\.gz|tgz)$/i;
const BOOK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export async function submitBook({ file, text, bookId, model, precision, pipeline, stripGutenberg }) {
  if (!file && !text.trim()) throw new ApiError(422, "empty_text", "paste some text or choose a file first");
  const form = new FormData();
  const id = bookId && bookId !== "book" ? bookId : file ? bookIdOf(file.name) : "book";
  form.append("file", file || new Blob([text], { type: "text/plain;charset=utf-8" }), file ? file.name : `${id}.txt`);
  const archive = file && ARCHIVE.test(file.name);
  if (!archive) form.append("book_id", id); // in a batch, each book is named by its file
  form.append("model", model);
  form.append("precision", precision);
  form.append("pipeline", pipeline.join(","));
  form.append("strip_gutenberg", String(stripGutenberg));
  return archive ? { batch: await submitBatch(form) } : apiJson("/v1/jobs", { method: "POST", body: form });
}

// A file name as a book id: "Pride and Prejudice.epub" → "Pride_and_Prejudice".
export function bookIdOf(name) {
  const id = name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 100);
  return BOOK_ID.test(id) ? id : "book";
}
