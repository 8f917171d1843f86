// A small lexicon-based sentiment model with no dependencies: the lexicon (word valences from -4 to +4,
// negations, intensifiers) is data in lexicon.json, loaded once in load() like real weights would be.
//
// predict({ text }) -> { label: "positive" | "negative" | "neutral", score: -1..1, environment }
// config: { neutralBand?: number } (|score| below it is "neutral"; default 0.05)

import { readFile } from "node:fs/promises";

// How far back a negation reaches ("not very good", "never really liked").
const NEGATION_WINDOW = 3;
// A negated word keeps most of its strength but flips sign: "not good" is weaker than "bad".
const NEGATION_FACTOR = -0.74;
// Squashes the unbounded sum into -1..1; larger means more words are needed to reach an extreme.
const NORMALIZATION = 15;

export default class SentimentModel {
  /** @param {{ environment: string | null, config: { neutralBand?: number } }} options */
  constructor({ environment, config }) {
    this.environment = environment;
    const band = config?.neutralBand;
    this.neutralBand = typeof band === "number" && band >= 0 && band < 1 ? band : 0.05;
    /** @type {Map<string, number>} */
    this.words = new Map();
    /** @type {Set<string>} */
    this.negations = new Set();
    /** @type {Map<string, number>} */
    this.intensifiers = new Map();
  }

  async load() {
    const lexicon = JSON.parse(await readFile(new URL("./lexicon.json", import.meta.url), "utf8"));
    this.words = new Map(Object.entries(lexicon.words));
    this.negations = new Set(lexicon.negations);
    this.intensifiers = new Map(Object.entries(lexicon.intensifiers));
    if (this.words.size === 0) throw new Error("lexicon.json has no words");
  }

  /** @param {unknown} input */
  predict(input) {
    const text = input !== null && typeof input === "object" ? /** @type {any} */ (input).text : undefined;
    if (typeof text !== "string") {
      throw new Error(`expected a JSON object {"text": "<string>"}, got ${describe(input)}`);
    }
    const score = this.score(text);
    const label =
      score >= this.neutralBand ? "positive" : score <= -this.neutralBand ? "negative" : "neutral";
    return { label, score: Math.round(score * 1000) / 1000, environment: this.environment };
  }

  /** @param {string} text */
  score(text) {
    const tokens = text.toLowerCase().match(/[a-z]+(?:'[a-z]+)?/g) ?? [];
    let sum = 0;
    for (let i = 0; i < tokens.length; i++) {
      const token = /** @type {string} */ (tokens[i]);
      let valence = this.words.get(token);
      if (valence === undefined) continue;
      const sign = Math.sign(valence);
      for (let back = 1; back <= NEGATION_WINDOW && i - back >= 0; back++) {
        const previous = /** @type {string} */ (tokens[i - back]);
        const boost = this.intensifiers.get(previous);
        // Intensifiers only count right before the word ("very good", "really very good").
        if (boost !== undefined && back <= 2) valence += sign * boost;
        if (this.negations.has(previous) || previous.endsWith("n't")) {
          valence *= NEGATION_FACTOR;
          break;
        }
      }
      sum += valence;
    }
    // An exclamation mark makes the whole statement a little stronger.
    const bangs = Math.min((text.match(/!/g) ?? []).length, 3);
    if (sum !== 0) sum += Math.sign(sum) * bangs * 0.29;
    return sum / Math.sqrt(sum * sum + NORMALIZATION);
  }
}

/** @param {unknown} value */
function describe(value) {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    if (!("text" in value)) return 'an object without "text"';
    const text = /** @type {{ text: unknown }} */ (value).text;
    return `"text" of type ${text === null ? "null" : typeof text}`;
  }
  return typeof value;
}
