// Each main character's mentions across the book, as an SVG line chart drawn here (no chart library).
// The book is cut into equal slices of tokens; each line counts one character's mentions per slice.
import { el } from "./http.js";

const SVG = "http://www.w3.org/2000/svg";
const MAIN_CHARACTERS = 6;
const SLICES = 20;
const WIDTH = 600;
const HEIGHT = 220;
const PAD = { left: 34, right: 10, top: 10, bottom: 28 };

export function mentionSeries(result) {
  const characters = [...(result.characters || [])]
    .sort((a, b) => b.mention_count - a.mention_count)
    .slice(0, MAIN_CHARACTERS);
  const entities = result.entities || [];
  const tokens = result.token_count || entities.reduce((most, e) => Math.max(most, e.end_token + 1), 1);
  const slice = Math.max(1, Math.ceil(tokens / SLICES));
  return characters.map((character) => {
    const counts = new Array(SLICES).fill(0);
    for (const entity of entities) {
      if (entity.coref === character.id) counts[Math.min(SLICES - 1, Math.floor(entity.start_token / slice))] += 1;
    }
    return { id: character.id, name: character.name || `#${character.id}`, counts };
  });
}

export function drawChart(container, result) {
  container.replaceChildren();
  const series = mentionSeries(result);
  if (!series.length || !result.entities) {
    container.append(el("p", "No characters to chart (the chart needs the entities and characters sections).",
      "muted"));
    return;
  }
  const top = Math.max(1, ...series.flatMap((s) => s.counts));
  const x = (i) => PAD.left + (i * (WIDTH - PAD.left - PAD.right)) / (SLICES - 1);
  const y = (n) => HEIGHT - PAD.bottom - (n * (HEIGHT - PAD.top - PAD.bottom)) / top;
  const svg = svgNode("svg", { viewBox: `0 0 ${WIDTH} ${HEIGHT}`, role: "img", class: "chart",
    "aria-label": "Mentions of the main characters in each twentieth of the book" });
  svg.append(svgNode("line", { x1: PAD.left, y1: y(0), x2: WIDTH - PAD.right, y2: y(0), class: "axis" }));
  svg.append(svgNode("line", { x1: PAD.left, y1: y(0), x2: PAD.left, y2: PAD.top, class: "axis" }));
  svg.append(label(PAD.left - 4, y(top) + 4, String(top), "end"));
  svg.append(label(PAD.left - 4, y(0) + 4, "0", "end"));
  svg.append(label(PAD.left, HEIGHT - 8, "start of the book", "start"));
  svg.append(label(WIDTH - PAD.right, HEIGHT - 8, "end", "end"));
  series.forEach((s, index) => {
    const points = s.counts.map((n, i) => `${x(i).toFixed(1)},${y(n).toFixed(1)}`).join(" ");
    const line = svgNode("polyline", { points, class: `series series-${index}` });
    line.append(titled(`${s.name}: ${s.counts.join(", ")}`));
    svg.append(line);
  });
  const legend = el("ul", null, "chart-legend");
  series.forEach((s, index) => {
    const item = el("li");
    item.append(el("span", "", `swatch series-${index}`), document.createTextNode(` ${s.name}`));
    legend.append(item);
  });
  container.append(svg, legend);
}

function svgNode(tag, attributes) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, String(value));
  return node;
}

function label(xPos, yPos, text, anchor) {
  const node = svgNode("text", { x: xPos, y: yPos, "text-anchor": anchor, class: "chart-label" });
  node.textContent = text;
  return node;
}

function titled(text) {
  const node = svgNode("title", {});
  node.textContent = text;
  return node;
}
