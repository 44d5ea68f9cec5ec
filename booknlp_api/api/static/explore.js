// The result explored: characters, quotes by speaker, the text with its entities marked, downloads.
// Everything from the book goes into the page as text nodes, never as markup.
import { drawChart } from "./chart.js";
import { api, el, saveResponse, show, showError } from "./http.js";

const MAX_TEXT_TOKENS = 30000;
const MAX_QUOTES = 1000;
const WORDS_SHOWN = 6;
const EXTENSIONS = { json: "json", native: "zip", html: "html" };

const $ = (id) => document.getElementById(id);

export function renderResult(result, job) {
  $("result-title").textContent = result.book_id;
  show($("synthetic-warning"), result.synthetic_models);
  const seconds = Object.values(result.timings || {}).reduce((a, b) => a + b, 0);
  $("result-summary").textContent = `${result.token_count ?? "?"} tokens · model ${result.model}` +
    `${result.synthetic_models ? " (synthetic)" : ""} · ${result.precision} · ${result.device} · ` +
    `${seconds.toFixed(1)} s · pipeline ${result.pipeline.join(", ")}`;
  renderCharacters(result.characters || []);
  drawChart($("chart"), result);
  renderQuotes(result.quotes || [], result.characters || []);
  renderText(result.tokens, result.entities || [], result.characters || []);
  wireDownloads(job);
  show($("result-section"), true);
}

function renderCharacters(characters) {
  const body = $("characters-table").tBodies[0];
  body.replaceChildren();
  for (const character of characters) {
    const row = el("tr");
    row.dataset.character = String(character.id);
    const variants = [...character.names, ...character.common_names]
      .filter((n) => n.name !== character.name).slice(0, WORDS_SHOWN)
      .map((n) => `${n.name} (${n.count})`).join(", ");
    const gender = character.gender && character.gender.inferred
      ? `${character.gender.inferred} (${Math.round(character.gender.confidence * 100)}%)` : "—";
    for (const text of [character.name ?? `#${character.id}`, variants || "—", character.mention_count, gender,
      words(character.agent_verbs), words(character.patient_verbs)]) {
      row.append(el("td", text));
    }
    body.append(row);
  }
  show($("characters-table"), characters.length > 0);
  show($("characters-empty"), characters.length === 0);
}

// The most frequent words first, with how often: "said ×4, looked".
function words(list) {
  const counts = new Map();
  for (const { word } of list) counts.set(word.toLowerCase(), (counts.get(word.toLowerCase()) || 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1]).slice(0, WORDS_SHOWN);
  return sorted.map(([word, n]) => (n > 1 ? `${word} ×${n}` : word)).join(", ") || "—";
}

function renderQuotes(quotes, characters) {
  const filter = $("quote-filter");
  const speakers = new Map();
  for (const quote of quotes) {
    if (quote.speaker_id === null || quote.speaker_id === undefined) continue;
    const known = speakers.get(quote.speaker_id);
    speakers.set(quote.speaker_id, { name: known?.name || quote.speaker_name || `#${quote.speaker_id}`,
      count: (known?.count || 0) + 1 });
  }
  const named = new Map(characters.map((c) => [c.id, c.name]));
  filter.replaceChildren(new Option("Everyone", ""));
  for (const [id, { name, count }] of [...speakers].sort((a, b) => b[1].count - a[1].count)) {
    filter.append(new Option(`${named.get(id) || name} (${count})`, String(id)));
  }
  const list = $("quotes");
  const draw = () => {
    const wanted = filter.value;
    const shown = quotes.filter((q) => wanted === "" || String(q.speaker_id) === wanted).slice(0, MAX_QUOTES);
    list.replaceChildren(...shown.map((quote) => {
      const item = el("li", null, "quote");
      item.append(el("q", quote.text.replace(/^[“"'‘]\s*|\s*[”"'’]$/g, "")),
        el("span", quote.speaker_name ? ` — ${quote.speaker_name}` : " — (no speaker found)", "speaker"));
      return item;
    }));
    show($("quotes-empty"), shown.length === 0);
  };
  filter.onchange = draw;
  draw();
}

// The text rebuilt from the tokens (their character offsets give the spaces, paragraphs a blank line), with
// every entity a <mark>; nested entities nest. A span that would cross an open one is left unmarked.
function renderText(tokens, entities, characters) {
  const container = $("book-text");
  container.replaceChildren();
  const note = $("text-note");
  if (!tokens) {
    note.textContent = "No tokens in this result (the tokens section was left out).";
    show(note, true);
    return;
  }
  const shown = tokens.slice(0, MAX_TEXT_TOKENS);
  note.textContent = `The first ${shown.length} of ${tokens.length} tokens.`;
  show(note, shown.length < tokens.length);
  const names = new Map(characters.map((c) => [c.id, c.name]));
  const starting = new Map();
  for (const entity of [...entities].sort((a, b) => a.start_token - b.start_token || b.end_token - a.end_token)) {
    if (!starting.has(entity.start_token)) starting.set(entity.start_token, []);
    starting.get(entity.start_token).push(entity);
  }
  const stack = [{ node: container, end: Infinity }];
  let previous = null;
  for (const token of shown) {
    if (previous) {
      const gap = token.paragraph !== previous.paragraph ? "\n\n" : token.start_char > previous.end_char ? " " : "";
      if (gap) stack[stack.length - 1].node.append(gap);
    }
    for (const entity of starting.get(token.index) || []) {
      if (entity.end_token > stack[stack.length - 1].end) continue;
      const mark = el("mark", null, `ent ${entity.category}`);
      const name = names.get(entity.coref);
      mark.title = `${entity.category} · ${entity.prop}${name ? ` · ${name}` : ""}`;
      stack[stack.length - 1].node.append(mark);
      stack.push({ node: mark, end: entity.end_token });
    }
    stack[stack.length - 1].node.append(token.text);
    while (stack.length > 1 && stack[stack.length - 1].end <= token.index) stack.pop();
    previous = token;
  }
}

function wireDownloads(job) {
  for (const button of document.querySelectorAll("#result-section .downloads button")) {
    button.onclick = () => download(job, button.dataset.format);
  }
}

async function download(job, format) {
  const error = $("download-error");
  showError(error, null);
  try {
    const response = await api(`/v1/jobs/${encodeURIComponent(job.id)}/result?format=${format}`);
    await saveResponse(response, `${job.book_id}.${EXTENSIONS[format]}`);
  } catch (failure) {
    showError(error, failure);
  }
}
