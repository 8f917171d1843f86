/** GraphQL documents of a chosen depth, alias count or token count, for the limit tests. */

/** A selection `levels` fields deep on a Model: productionEnvironment { model { … { id } } }. */
export function modelChain(levels: number): string {
  let selection = "id";
  for (let level = levels - 1; level >= 1; level--) {
    selection = `${level % 2 === 1 ? "productionEnvironment" : "model"} { ${selection} }`;
  }
  return selection;
}

/** A query `depth` fields deep (the root field counts 1). */
export function deepQuery(depth: number): string {
  return `{ model(name: "m") { ${modelChain(depth - 1)} } }`;
}

/** A query with `count` aliases. */
export function aliasedQuery(count: number): string {
  return `{ ${Array.from({ length: count }, (_, i) => `m${i}: model(name: "m") { id }`).join(" ")} }`;
}

/**
 * A document of exactly `tokens` tokens (a multiple of 5) that is cheap to validate: that many
 * operations `query Qn { __typename }`; run it with operationName "Q0".
 */
export function manyOperations(tokens: number): string {
  if (tokens % 5 !== 0) throw new Error("manyOperations takes a multiple of 5 tokens");
  return Array.from({ length: tokens / 5 }, (_, i) => `query Q${i} { __typename }`).join("\n");
}
