/**
 * Generated malformed HTTP requests for the fuzz test: mutated request lines,
 * methods, targets and headers, header floods, bad chunked bodies, bad JSON,
 * truncated requests, and pipelines of well-formed requests ending in a bad one.
 */
import type { Rng } from "./rng.ts";

export interface FuzzTarget {
  host: string;
  key: string;
  modelId: string;
  deploymentId: string;
}

export interface HttpCase {
  kind: string;
  parts: Buffer[];
  /** Request messages written (when known): the client half-closes once that many answers are in. */
  messages?: number;
  /** Responses to a HEAD carry no body. */
  heads?: number;
  /** Pipelines: the exact statuses of the well-formed requests in front, in order. */
  expected?: number[];
  /** ...and text each of their answers must hold (null: anything), which tells the answers apart. */
  expectedBodies?: (string | null)[];
}

type Header = [string, string];

interface Message {
  method: string;
  target: string;
  version: string;
  headers: Header[];
  body: Buffer;
}

const CRLF = "\r\n";

function serialize(m: Message, eol = CRLF): Buffer {
  const head = [`${m.method} ${m.target} ${m.version}`, ...m.headers.map(([n, v]) => `${n}: ${v}`)];
  return Buffer.concat([Buffer.from(head.join(eol) + eol + eol, "latin1"), m.body]);
}

const MODELS_QUERY = "{ models(first: 5) { edges { node { id name } } } }";

function jsonBody(value: unknown): Buffer {
  return Buffer.from(JSON.stringify(value));
}

/** A well-formed request and the status Hangar must answer it with. */
interface Good {
  message: Message;
  status: number;
  body: string | null;
}

function goodRequests(t: FuzzTarget, rng: Rng): Good[] {
  const auth: Header = ["Authorization", `Bearer ${t.key}`];
  const host: Header = ["Host", t.host];
  const json: Header = ["Content-Type", "application/json"];
  const post = (target: string, body: Buffer, headers: Header[]): Message => ({
    method: "POST",
    target,
    version: "HTTP/1.1",
    headers: [host, ...headers, ["Content-Length", String(body.length)]],
    body,
  });
  const get = (target: string, headers: Header[] = []): Message => ({
    method: "GET",
    target,
    version: "HTTP/1.1",
    headers: [host, ...headers],
    body: Buffer.alloc(0),
  });
  const predictPath = `/models/${t.modelId}/deployments/${t.deploymentId}/predict`;
  const n = rng.int(1_000_000);
  const models = `"edges":[{"node":{"id":"${t.modelId}","name":"echo"}}]`;
  return [
    { message: get("/healthz"), status: 200, body: '{"status":"ok"}' },
    { message: get(`/nothing/${n}`), status: 404, body: `/nothing/${n}` },
    {
      message: post("/graphql", jsonBody({ query: MODELS_QUERY }), [json]),
      status: 401,
      body: "unauthorized",
    },
    { message: post("/graphql", jsonBody({ query: MODELS_QUERY }), [json, auth]), status: 200, body: models },
    { message: get(`/graphql?query=${encodeURIComponent(MODELS_QUERY)}`, [auth]), status: 200, body: models },
    {
      message: post(predictPath, jsonBody({ fuzz: n }), [json, auth]),
      status: 200,
      body: JSON.stringify({ echo: { fuzz: n } }),
    },
    { message: post(predictPath, Buffer.from("{not json"), [json, auth]), status: 400, body: "client_error" },
    { message: post("/graphql", Buffer.from('{"query":'), [json, auth]), status: 400, body: "invalid JSON" },
    { message: { ...get("/graphql", [auth]), method: "PUT" }, status: 405, body: "method_not_allowed" },
    { message: get("//"), status: 400, body: "client_error" },
    { message: get("/graphql?query={a}&variables={bad", [auth]), status: 400, body: "BAD_REQUEST" },
  ];
}

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "HEAD",
  "TRACE",
  "CONNECT",
  "PROPFIND",
  "MKCOL",
  "SEARCH",
  "QUERY",
  "PURGE",
  "SOURCE",
  "M-SEARCH",
  "PRI",
  "BREW",
  "FOO",
  "get",
  "Post",
  "",
  "G ET",
  "GET\u0000",
  "GËT",
  "A".repeat(200),
];

const VERSIONS = [
  "HTTP/1.1",
  "HTTP/1.1",
  "HTTP/1.1",
  "HTTP/1.0",
  "HTTP/2.0",
  "HTTP/0.9",
  "HTTP/1.2",
  "HTTP/1.1x",
  "HTTP/11",
  "http/1.1",
  "HTTPS/1.1",
  "",
  "HTTP/1.1 extra",
];

function hostileTargets(t: FuzzTarget): string[] {
  const m = t.modelId;
  return [
    "/",
    "//",
    "///",
    "*",
    "http://evil/",
    "https://evil:443/graphql",
    "http://127.0.0.1/graphql",
    "evil:443",
    "graphql",
    "/graphql",
    "/graphql?query={models(first:5){edges{node{id}}}}",
    "/graphql?query={a}&variables={bad",
    "/graphql?query={a}&extensions=[",
    "/graphql?variables=%ZZ",
    "/graphql#frag",
    "/graphql%00",
    "/graphql/",
    "/GRAPHQL",
    "/healthz",
    "/healthz?%",
    "/healthz/../graphql",
    "/%2e%2e/graphql",
    "/a/./b",
    "/\\evil",
    "/\\\\evil/graphql",
    "/é",
    "/a b",
    "/a\tb",
    `/${"a".repeat(9000)}`,
    `/graphql?q=${"b".repeat(12_000)}`,
    `/models/${m}/predict`,
    `/models/${m}/production/predict`,
    `/models/${m}/development/wake`,
    `/models/${m}/environments/production/predict`,
    `/models/${m}/environments/%E2%82/predict`,
    `/models/${m}/deployments/${t.deploymentId}/predict`,
    `/models/${m}/deployments/%ZZ/predict`,
    `/models/${m}/deployments/${t.deploymentId}%00/predict`,
    "/models/%ZZ/predict",
    "/models/%C0%AF/predict",
    "/models/a%00b/predict",
    "/models/a%0d%0aSet-Cookie:%20x/predict",
    "/models//predict",
    "/models/x/y/z/w/predict",
    `/models/${"%41".repeat(2000)}/predict`,
    "/sign-in",
    "/sign-out",
    "/favicon.ico",
    "/%",
    "/%%",
    "/%u0041",
  ];
}

const PATH_ALPHABET = "abcXYZ019/._-~%?&=#:@!$'()*+,;[]{}|\\^`\"<> \t\u0000\u0001\u007f\u0080\u00ff";

function randomTarget(rng: Rng, t: FuzzTarget): string {
  const base = rng.pick(hostileTargets(t));
  switch (rng.int(4)) {
    case 0:
      return base;
    case 1:
      return `/${rng.string(rng.range(0, 40), PATH_ALPHABET)}`;
    case 2: {
      // Random percent-escapes, some valid, some not, some control bytes.
      let out = "/models/";
      for (let i = rng.range(1, 8); i > 0; i--) {
        out += rng.chance(0.5)
          ? `%${rng.string(2, "0123456789abcdefABCDEFgZ%")}`
          : rng.string(rng.range(1, 4), "abc019-_");
      }
      return `${out}/predict`;
    }
    default: {
      // A valid target with one character replaced or inserted.
      const at = rng.int(base.length + 1);
      const c = rng.string(1, PATH_ALPHABET);
      return rng.chance(0.5)
        ? base.slice(0, at) + c + base.slice(at + 1)
        : base.slice(0, at) + c + base.slice(at);
    }
  }
}

const HOSTS = (t: FuzzTarget) => [
  t.host,
  t.host,
  t.host,
  "",
  "a b",
  "[",
  "[::1",
  "[::1]:4000",
  "x:99999",
  "%",
  "evil.example",
  "a/b",
  "@",
  "a?b",
  "a#b",
  "1.2.3.999",
  "::",
  "a:b:c",
  "é",
  "h".repeat(300),
];

const CONTENT_TYPES = [
  "application/json",
  "application/json",
  "application/json; charset=utf-8",
  "application/json; charset=utf-16",
  "application/graphql+json",
  "application/graphql",
  "application/x-www-form-urlencoded",
  "multipart/form-data; boundary=xyz",
  "multipart/form-data",
  "text/plain",
  "",
  ";;;",
  "application/json, text/html",
  "\u00ff\u00fe",
];

function badJson(rng: Rng): Buffer {
  const valid = JSON.stringify({ query: MODELS_QUERY, variables: { a: rng.int(10) } });
  switch (rng.int(16)) {
    case 0:
      return Buffer.from(valid.slice(0, rng.int(valid.length)));
    case 1: {
      const bytes = Buffer.from(valid);
      for (let i = rng.range(1, 4); i > 0; i--) bytes[rng.int(bytes.length)] = rng.int(256);
      return bytes;
    }
    case 2:
      return Buffer.from("[".repeat(rng.range(1000, 200_000)));
    case 3:
      return Buffer.from(`{"query":"${"{ models ".repeat(rng.range(20, 3000))}"}`);
    case 4:
      return Buffer.from('{"query":"{ models(first: 5) { edges { node { id } } } }","variables":"x"}');
    case 5:
      return Buffer.from(rng.pick(["null", "[]", '"x"', "1e999999", "true", "{}", '{"query":1}', ""]));
    case 6:
      return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(valid)]);
    case 7:
      return Buffer.from([0xff, 0xfe, 0xc0, 0xaf, 0x80, 0x00]);
    case 8:
      return Buffer.from('{"query":"\\ud800 { models { id } }"}');
    case 9:
      return Buffer.from(`{"query":"{ __typename }","extensions":${rng.pick(["1", '"x"', "[]", "null"])}}`);
    case 10:
      return Buffer.from(`{"query":"{ __typename }","operationName":${rng.pick(["1", "{}", "[]"])}}`);
    case 11:
      return Buffer.from(`{"query":"${"a".repeat(rng.range(1, 300_000))}"}`);
    case 12:
      return Buffer.from('{"__proto__":{"query":"{ __typename }"},"constructor":{"prototype":{"x":1}}}');
    case 13:
      return Buffer.from(
        `--xyz\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${valid}\r\n--xyz\r\n`,
      );
    case 14:
      return Buffer.from(
        '--xyz\r\nContent-Disposition: form-data; name="operations"\r\n\r\nnull\r\n' +
          '--xyz\r\nContent-Disposition: form-data; name="map"\r\n\r\n{"0":[1]}\r\n--xyz--\r\n',
      );
    default:
      return rng.bytes(rng.range(0, 64));
  }
}

function baseHeaders(rng: Rng, t: FuzzTarget): Header[] {
  const headers: Header[] = [["Host", rng.chance(0.85) ? t.host : rng.pick(HOSTS(t))]];
  if (rng.chance(0.6)) headers.push(["Authorization", `Bearer ${t.key}`]);
  else if (rng.chance(0.3))
    headers.push(["Authorization", rng.pick(["Bearer", "Bearer ", "Basic x", "Bearer hk_x"])]);
  return headers;
}

function requestLineCase(rng: Rng, t: FuzzTarget): HttpCase {
  const method = rng.pick(METHODS);
  const message: Message = {
    method,
    target: randomTarget(rng, t),
    version: rng.pick(VERSIONS),
    headers: [...baseHeaders(rng, t), ["Connection", "close"]],
    body: Buffer.alloc(0),
  };
  let bytes = serialize(message);
  if (rng.chance(0.2)) {
    // Odd separators in the request line.
    const line = bytes.indexOf(CRLF);
    const first = bytes
      .subarray(0, line)
      .toString("latin1")
      .replace(/ /g, () => rng.pick(["  ", "\t", " ", "\u000b"]));
    bytes = Buffer.concat([Buffer.from(first, "latin1"), bytes.subarray(line)]);
  }
  return { kind: "request line", parts: [bytes], messages: 1, heads: method === "HEAD" ? 1 : 0 };
}

const HEADER_NAMES = [
  "X-Test",
  "X Test",
  "X\u0000Test",
  "(",
  ":",
  "",
  "X-Ünï",
  "Content-Length",
  "Transfer-Encoding",
  "Host",
  "Expect",
  "Upgrade",
  "Connection",
  "Origin",
  "Cookie",
  "Accept",
  "Content-Type",
  "graphql-require-preflight",
  "X".repeat(300),
];

const HEADER_VALUES = [
  "",
  " ",
  "ok",
  "a\u0000b",
  "a\u007fb",
  "\u0080\u00ff",
  "a\rb",
  "100-continue",
  "something-else",
  "chunked",
  "chunked, chunked",
  "gzip",
  "-1",
  "99999999999999999999",
  "5, 6",
  "1e3",
  "h2c",
  "websocket",
  "Upgrade",
  "close",
  "keep-alive",
  "text/html",
  "v".repeat(5000),
];

function headerCase(rng: Rng, t: FuzzTarget): HttpCase {
  const body = rng.chance(0.5) ? jsonBody({ query: MODELS_QUERY }) : Buffer.alloc(0);
  const headers: Header[] = baseHeaders(rng, t);
  if (rng.chance(0.7)) headers.push(["Content-Type", rng.pick(CONTENT_TYPES)]);
  if (rng.chance(0.8)) headers.push(["Content-Length", String(body.length)]);
  for (let i = rng.range(1, 4); i > 0; i--) headers.push([rng.pick(HEADER_NAMES), rng.pick(HEADER_VALUES)]);
  headers.push(["Connection", "close"]);
  const message: Message = {
    method: rng.pick(["GET", "POST", "POST", "OPTIONS", "PUT"]),
    target: rng.pick([
      "/graphql",
      "/graphql",
      "/healthz",
      `/models/${t.modelId}/deployments/${t.deploymentId}/predict`,
    ]),
    version: "HTTP/1.1",
    headers: rng.chance(0.5) ? headers : rng.shuffled(headers),
    body,
  };
  const eol = rng.chance(0.1) ? rng.pick(["\n", "\r", "\r\r\n"]) : CRLF;
  return { kind: "headers", parts: [serialize(message, eol)], messages: 1 };
}

function floodCase(rng: Rng, t: FuzzTarget): HttpCase {
  const headers: Header[] = [["Host", t.host]];
  switch (rng.int(4)) {
    case 0:
      for (let i = rng.range(2000, 4000); i > 0; i--) headers.push([`X-F${i}`, "y"]);
      break;
    case 1:
      headers.push(["X-Big", "z".repeat(rng.range(16_000, 80_000))]);
      break;
    case 2:
      for (let i = rng.range(100, 1500); i > 0; i--) headers.push(["Cookie", `c${i}=${"v".repeat(10)}`]);
      break;
    default:
      for (let i = rng.range(10, 200); i > 0; i--)
        headers.push([`X-${rng.string(8, "abcdef")}`, rng.string(60, "xyz")]);
  }
  headers.push(["Connection", "close"]);
  const message: Message = {
    method: "GET",
    target: "/graphql",
    version: "HTTP/1.1",
    headers,
    body: Buffer.alloc(0),
  };
  return { kind: "header flood", parts: [serialize(message)], messages: 1 };
}

function chunkedCase(rng: Rng, t: FuzzTarget): HttpCase {
  const json = jsonBody({ query: MODELS_QUERY });
  const chunks = [
    `${json.length.toString(16)}\r\n${json}\r\n0\r\n\r\n`,
    `ZZ\r\n${json}\r\n0\r\n\r\n`,
    `-1\r\n${json}\r\n0\r\n\r\n`,
    `fffffffffffffffff\r\nabc\r\n`,
    `${json.length.toString(16)};${"e".repeat(rng.range(10, 20_000))}\r\n${json}\r\n0\r\n\r\n`,
    `${json.length.toString(16)}\r\n${json}0\r\n\r\n`,
    `${(json.length + 5).toString(16)}\r\n${json}\r\n0\r\n\r\n`,
    `3\r\nabc\r\n0\r\nX-Trailer\u0000: bad\r\n\r\n`,
    `3\r\nabc`,
    `3\r\nabc\r\n0\r\n`,
    `3 \r\nabc\r\n0\r\n\r\n`,
    `3\nabc\n0\n\n`,
    `0x3\r\nabc\r\n0\r\n\r\n`,
  ];
  const te = rng.pick([
    "chunked",
    "chunked",
    "chunked",
    "Chunked",
    " chunked",
    "gzip, chunked",
    "chunked, gzip",
    "xchunked",
  ]);
  const headers: Header[] = [
    ...baseHeaders(rng, t),
    ["Content-Type", "application/json"],
    ["Transfer-Encoding", te],
  ];
  if (rng.chance(0.2)) headers.push(["Content-Length", String(rng.int(100))]);
  headers.push(["Connection", "close"]);
  const message: Message = {
    method: "POST",
    target: rng.pick(["/graphql", `/models/${t.modelId}/deployments/${t.deploymentId}/predict`, "/nothing"]),
    version: "HTTP/1.1",
    headers,
    body: Buffer.from(rng.pick(chunks), "latin1"),
  };
  return { kind: "chunked", parts: [serialize(message)], messages: 1 };
}

function jsonCase(rng: Rng, t: FuzzTarget): HttpCase {
  const body = badJson(rng);
  const headers: Header[] = [...baseHeaders(rng, t), ["Content-Type", rng.pick(CONTENT_TYPES)]];
  if (rng.chance(0.3)) headers.push(["graphql-require-preflight", "1"]);
  headers.push(["Content-Length", String(body.length)], ["Connection", "close"]);
  const message: Message = {
    method: "POST",
    target: rng.pick([
      "/graphql",
      "/graphql",
      `/models/${t.modelId}/deployments/${t.deploymentId}/predict`,
      `/models/${t.modelId}/predict`,
    ]),
    version: "HTTP/1.1",
    headers,
    body,
  };
  return { kind: "bad json", parts: [serialize(message)], messages: 1 };
}

const PUSH = "mutation($input: PushDeploymentInput!) { pushDeployment(input: $input) { __typename } }";

/** A part of a multipart body: its headers as sent, and its content. */
type Part = [headers: string, content: string | Buffer];

function field(name: string, value: string): Part {
  return [`Content-Disposition: form-data; name="${name}"`, value];
}

function file(name: string, filename: string, content: Buffer): Part {
  return [
    `Content-Disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/gzip`,
    content,
  ];
}

/** Hostile uploads (the GraphQL multipart request spec): none is a valid archive, so nothing is created. */
function multipartCase(rng: Rng, t: FuzzTarget): HttpCase {
  const boundary = rng.pick(["xyz", "----fuzz", "a".repeat(70), "b c", "="]);
  const operations = JSON.stringify({
    query: PUSH,
    variables: { input: { modelName: `fuzz${rng.int(100)}`, source: null } },
  });
  const map = '{"0":["variables.input.source"]}';
  const garbage = rng.bytes(rng.range(0, 2000));
  const gzipHead = Buffer.concat([Buffer.from([0x1f, 0x8b, 0x08, 0x00]), rng.bytes(rng.range(0, 500))]);
  const shapes: (() => Part[])[] = [
    () => [field("operations", operations), field("map", map), file("0", "model.tar.gz", garbage)],
    () => [field("operations", operations), field("map", map), file("0", "model.tar.gz", gzipHead)],
    () => [field("operations", "{not json"), field("map", map), file("0", "m.tgz", garbage)],
    () => [
      field("operations", operations),
      field(
        "map",
        rng.pick([
          "{bad",
          "[]",
          '{"0":1}',
          '{"0":[1]}',
          '{"0":["__proto__.x"]}',
          '{"9":["variables.input.source"]}',
        ]),
      ),
    ],
    () => [field("operations", "null"), field("map", map), file("0", "m.tgz", garbage)],
    () => [
      field("operations", operations),
      field("map", '{"0":["variables.input.modelName"]}'),
      file("0", "m.tgz", garbage),
    ],
    () => [field("map", map), file("0", "m.tgz", garbage), field("operations", operations)],
    () => [field("operations", operations), field("map", map), file("0", "../../../etc/passwd", garbage)],
    () => [
      field("operations", operations),
      field("map", map),
      ...Array.from({ length: 20 }, (_, i) => file(String(i), "x", garbage)),
    ],
    () => Array.from({ length: rng.range(60, 300) }, (_, i) => field(`f${i}`, "v")),
    () => [
      field("operations", operations),
      ["Content-Disposition: form-data", "no name"],
      ["X-Garbage", "\u0000"],
    ],
    () => [[`Content-Disposition: form-data; name="${"n".repeat(20_000)}"`, "v"]],
    () =>
      [field("operations", operations), field("map", map), file("0", "m.tgz", garbage)].slice(
        0,
        rng.range(0, 2),
      ),
  ];
  let body = Buffer.concat([
    ...rng
      .pick(shapes)()
      .map(([headers, content]) =>
        Buffer.concat([
          Buffer.from(`--${boundary}\r\n${headers}\r\n\r\n`, "latin1"),
          Buffer.from(content),
          Buffer.from("\r\n"),
        ]),
      ),
    Buffer.from(rng.chance(0.8) ? `--${boundary}--\r\n` : ""),
  ]);
  if (rng.chance(0.2)) body = body.subarray(0, rng.int(body.length));
  const type = rng.chance(0.85)
    ? `multipart/form-data; boundary=${boundary}`
    : rng.pick([
        "multipart/form-data",
        "multipart/form-data; boundary=other",
        "multipart/mixed; boundary=xyz",
      ]);
  const headers: Header[] = [
    ["Host", t.host],
    ["Authorization", `Bearer ${rng.chance(0.9) ? t.key : "hk_wrong"}`],
    ["Content-Type", type],
  ];
  if (rng.chance(0.9)) headers.push(["graphql-require-preflight", "1"]);
  if (rng.chance(0.8))
    headers.push(["Content-Length", String(rng.chance(0.9) ? body.length : rng.int(body.length * 2 + 1))]);
  else headers.push(["Transfer-Encoding", "chunked"]);
  const chunked = headers.some(([name]) => name === "Transfer-Encoding");
  if (chunked)
    body = Buffer.concat([
      Buffer.from(`${body.length.toString(16)}\r\n`),
      body,
      Buffer.from("\r\n0\r\n\r\n"),
    ]);
  headers.push(["Connection", "close"]);
  const message: Message = { method: "POST", target: "/graphql", version: "HTTP/1.1", headers, body };
  return { kind: "multipart", parts: [serialize(message)], messages: 1 };
}

/** The browser's paths: the home page, sign-in (form, link) and sign-out, with hostile forms, cookies and origins. */
function browserCase(rng: Rng, t: FuzzTarget): HttpCase {
  const forms = [
    `key=${encodeURIComponent(t.key)}`,
    "key=hk_wrong",
    "key=%ZZ%",
    "key=",
    "key=a&key=b&key=c",
    `key=${"k".repeat(rng.range(1000, 200_000))}`,
    "=&&&==&",
    "\u00ff\u00fe\u0000",
    "",
  ];
  const body = Buffer.from(rng.pick(forms), "latin1");
  const headers: Header[] = [
    ["Host", rng.chance(0.9) ? t.host : rng.pick(HOSTS(t))],
    ["Accept", rng.pick(["text/html", "*/*", "application/json", ""])],
    [
      "Content-Type",
      rng.pick(["application/x-www-form-urlencoded", "multipart/form-data", "text/plain", ""]),
    ],
  ];
  if (rng.chance(0.6)) {
    headers.push([
      "Cookie",
      rng.pick([
        "a=b",
        "hangar_session=%ZZ",
        `${"c".repeat(300)}=${"v".repeat(3000)}`,
        ";;;==;",
        "x=\u00ff\u0080",
        Array.from({ length: 300 }, (_, i) => `c${i}=v`).join("; "),
      ]),
    ]);
  }
  if (rng.chance(0.5)) {
    headers.push([
      "Origin",
      rng.pick([`http://${t.host}`, "null", "http://evil.example", "garbage", "http://[", ""]),
    ]);
  }
  if (rng.chance(0.2)) headers.push(["Referer", rng.pick(["http://evil.example/", "::", "%"])]);
  headers.push(["Content-Length", String(body.length)], ["Connection", "close"]);
  const message: Message = {
    method: rng.pick(["GET", "POST", "POST", "PUT", "HEAD", "OPTIONS"]),
    target: rng.pick([
      "/",
      "/sign-in",
      "/sign-in",
      "/sign-out",
      `/sign-in/${rng.string(rng.range(0, 60), "abcXYZ019_-%")}`,
      "/sign-in/",
      "/sign-in/%ZZ",
      "/sign-in?next=http://evil.example",
      "/?x=%",
    ]),
    version: "HTTP/1.1",
    headers,
    body,
  };
  return {
    kind: "browser",
    parts: [serialize(message)],
    messages: 1,
    heads: message.method === "HEAD" ? 1 : 0,
  };
}

function truncatedCase(rng: Rng, t: FuzzTarget): HttpCase {
  const whole = serialize(rng.pick(goodRequests(t, rng)).message);
  const cut = whole.subarray(0, rng.int(whole.length));
  return { kind: "truncated", parts: [cut], messages: 1 };
}

function garbageCase(rng: Rng): HttpCase {
  const parts: Buffer[] = [];
  for (let i = rng.range(1, 3); i > 0; i--) {
    parts.push(
      rng.chance(0.5)
        ? rng.bytes(rng.range(1, 300))
        : Buffer.from(rng.string(rng.range(1, 200), "GETPOST /HTTP1.\r\n:abc \u0000\u00ff"), "latin1"),
    );
  }
  return { kind: "garbage", parts };
}

function mutatedCase(rng: Rng, t: FuzzTarget): HttpCase {
  const bytes = Buffer.from(serialize(rng.pick(goodRequests(t, rng)).message));
  let mutated: Buffer = bytes;
  for (let i = rng.range(1, 5); i > 0; i--) {
    const at = rng.int(mutated.length);
    switch (rng.int(3)) {
      case 0:
        mutated[at] = rng.int(256);
        break;
      case 1:
        mutated = Buffer.concat([mutated.subarray(0, at), rng.bytes(rng.range(1, 3)), mutated.subarray(at)]);
        break;
      default:
        mutated = Buffer.concat([mutated.subarray(0, at), mutated.subarray(at + rng.range(1, 3))]);
    }
  }
  return { kind: "mutated", parts: [mutated], messages: 1 };
}

function pipelineCase(rng: Rng, t: FuzzTarget): HttpCase {
  const front: Good[] = [];
  // Drawn afresh each time, so that two predictions in one pipeline carry different numbers.
  for (let i = rng.range(1, 4); i > 0; i--) front.push(rng.pick(goodRequests(t, rng)));
  const bytes = front.map((g) => serialize(g.message));
  let bad = "none";
  if (rng.chance(0.75)) {
    // Then one bad request, which must not disturb the answers in front of it.
    const last = rng.pick([
      requestLineCase,
      headerCase,
      floodCase,
      chunkedCase,
      jsonCase,
      truncatedCase,
      mutatedCase,
    ])(rng, t);
    bad = last.kind;
    bytes.push(...last.parts);
  } else {
    const closing = rng.pick(goodRequests(t, rng));
    front.push({
      ...closing,
      message: { ...closing.message, headers: [...closing.message.headers, ["Connection", "close"]] },
    });
    bytes.push(serialize(front[front.length - 1]?.message as Message));
  }
  const parts = rng.chance(0.5) ? [Buffer.concat(bytes)] : bytes;
  return {
    kind: `pipeline (then ${bad})`,
    parts,
    messages: front.length + (bad === "none" ? 0 : 1),
    expected: front.map((g) => g.status),
    expectedBodies: front.map((g) => g.body),
  };
}

export const HTTP_GENERATORS: Record<string, (rng: Rng, t: FuzzTarget) => HttpCase> = {
  requestLine: requestLineCase,
  headers: headerCase,
  flood: floodCase,
  chunked: chunkedCase,
  json: jsonCase,
  multipart: multipartCase,
  browser: browserCase,
  truncated: truncatedCase,
  garbage: (rng) => garbageCase(rng),
  mutated: mutatedCase,
  pipeline: pipelineCase,
};

export function httpCase(rng: Rng, t: FuzzTarget): HttpCase {
  return rng.pick(Object.values(HTTP_GENERATORS))(rng, t);
}
