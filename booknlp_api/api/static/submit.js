// A submission: pasted text or a dropped file goes to POST /v1/jobs as a multipart upload (the server reads
// .txt, and EPUB or HTML where it supports them); an archive of books needs POST /v1/batches.
import { ApiError, apiJson } from "./http.js";

const ARCHIVE = /\.(zip|tar\.gz|tgz)$/i;
const BOOK_ID = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

export async function submitBook({ file, text, bookId, model, precision, pipeline, stripGutenberg }) {
  if (file && ARCHIVE.test(file.name)) {
    throw new ApiError(415, "archive", `${file.name} is an archive of books: this service has no POST /v1/batches `
      + "to take it; submit the books one by one");
  }
  if (!file && !text.trim()) throw new ApiError(422, "empty_text", "paste some text or choose a file first");
  const form = new FormData();
  const id = bookId && bookId !== "book" ? bookId : file ? bookIdOf(file.name) : "book";
  form.append("file", file || new Blob([text], { type: "text/plain;charset=utf-8" }), file ? file.name : `${id}.txt`);
  form.append("book_id", id);
  form.append("model", model);
  form.append("precision", precision);
  form.append("pipeline", pipeline.join(","));
  form.append("strip_gutenberg", String(stripGutenberg));
  return apiJson("/v1/jobs", { method: "POST", body: form });
}

// A file name as a book id: "Pride and Prejudice.epub" → "Pride_and_Prejudice".
export function bookIdOf(name) {
  const id = name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^[^A-Za-z0-9]+/, "")
    .slice(0, 100);
  return BOOK_ID.test(id) ? id : "book";
}
