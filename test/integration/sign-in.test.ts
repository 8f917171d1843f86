import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchBrowser } from "../support/browser.ts";
import { gql } from "../support/client.ts";
import { startHangar, type TestHangar } from "../support/hangar.ts";
import { waitFor } from "../support/wait.ts";

/**
 * Browser sign-in (API.md section 7) in a real Chromium: the printed link, the
 * form, sessions in GraphiQL and on its WebSocket, sign-out, revocation, and
 * what a page of another origin can (not) do.
 */

// A page of another origin (another port of the same host: the same *site*, so the
// browser does send Hangar's SameSite=Strict cookie along; only the Origin rules stop it).
const PROBES = `
async function outcome(promise) {
  try { return await promise; } catch (error) { return "failed: " + error.name; }
}
window.probes = {
  postJson: (url, body, headers, credentials) => outcome(fetch(url, {
    method: "POST", credentials, body: JSON.stringify(body),
    headers: Object.assign({ "content-type": "application/json" }, headers),
  }).then(async (r) => ({ status: r.status, body: await r.text() }))),
  // A "simple" request: no preflight, so it does reach Hangar; the page cannot see the answer.
  postSimple: (url, text) => outcome(fetch(url, {
    method: "POST", credentials: "include", mode: "no-cors", headers: { "content-type": "text/plain" }, body: text,
  }).then((r) => r.type)),
  read: (url) => outcome(fetch(url, { credentials: "include" }).then((r) => r.text())),
  socket: (url, payload) => new Promise((resolve) => {
    const ws = new WebSocket(url, "graphql-transport-ws");
    ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload }));
    ws.onmessage = (event) => {
      if (JSON.parse(event.data).type === "connection_ack") { resolve("acknowledged"); ws.close(); }
    };
    ws.onclose = (event) => resolve("closed " + event.code);
  }),
};
`;

interface Probes {
  postJson(
    url: string,
    body: unknown,
    headers: Record<string, string>,
    credentials: RequestCredentials,
  ): Promise<{ status: number; body: string } | string>;
  postSimple(url: string, text: string): Promise<string>;
  read(url: string): Promise<string>;
  socket(url: string, payload: Record<string, unknown>): Promise<string>;
}

/** What a session socket opened from one of Hangar's pages saw. */
interface SocketState {
  acknowledged: boolean;
  closed: number | null;
}

const CREATE_KEY = `mutation($input: CreateApiKeyInput!) {
  createApiKey(input: $input) {
    __typename
    ... on CreatedApiKey { secret apiKey { id name role } }
    ... on UserError { code message }
  }
}`;
const REVOKE_KEY = `mutation($id: ID!) { revokeApiKey(id: $id) { __typename ... on UserError { code message } } }`;
const CREATE_MODEL = `mutation($name: String!) {
  createModel(input: { name: $name }) { __typename ... on Model { id } ... on UserError { code message } }
}`;

let hangar: TestHangar;
/** Lists `elsewhere` in HANGAR_CORS_ORIGINS. */
let listing: TestHangar;
let elsewhere: Server;
let elsewhereUrl: string;
let browser: Browser;
const contexts: BrowserContext[] = [];
/** Every secret of the run: none may ever appear in a page, a cookie readable by script, or storage. */
const secrets: string[] = [];

async function createKey(
  target: TestHangar,
  name: string,
  role: string,
): Promise<{ id: string; secret: string }> {
  const data = await gql(target, CREATE_KEY, { input: { name, role } });
  if (data.createApiKey.__typename !== "CreatedApiKey") throw new Error(JSON.stringify(data.createApiKey));
  secrets.push(data.createApiKey.secret);
  return { id: data.createApiKey.apiKey.id, secret: data.createApiKey.secret };
}

/** The link of the `  Sign in: <url>` line the server printed with its banner. */
async function printedLink(target: TestHangar): Promise<string> {
  const link = await waitFor(() => /^ {2}Sign in: (\S+)$/m.exec(target.output())?.[1], {
    what: "the Sign in line",
  });
  secrets.push(new URL(link).pathname.split("/").pop() as string);
  return link;
}

async function newPerson(): Promise<BrowserContext> {
  const context = await browser.newContext();
  contexts.push(context);
  return context;
}

async function sessionCookie(context: BrowserContext, target: TestHangar) {
  const cookies = (await context.cookies(target.url)).filter((c) => c.name.startsWith("hangar_session_"));
  return cookies;
}

/** Signs a browser in with the sign-in form; returns the page (on `/` when it worked). */
async function signInWithForm(context: BrowserContext, target: TestHangar, key: string) {
  const page = await context.newPage();
  await page.goto(`${target.url}/sign-in`);
  await page.getByLabel("API key").fill(key);
  const answer = page.waitForResponse(
    (r) => r.url() === `${target.url}/sign-in` && r.request().method() === "POST",
  );
  await page.getByRole("button", { name: "Sign in" }).click();
  const status = (await answer).status();
  await page.waitForLoadState();
  return { page, status };
}

/** The HTML of a page as Hangar sends it, with a browser's cookie. */
async function rawPage(
  target: TestHangar,
  path: string,
  cookie: string,
): Promise<{ status: number; html: string }> {
  const response = await fetch(`${target.url}${path}`, {
    headers: { cookie, accept: "text/html" },
    redirect: "manual",
  });
  return { status: response.status, html: await response.text() };
}

async function expectNothingSecretIn(page: Page): Promise<void> {
  const html = await page.content();
  const scriptVisible = await page.evaluate(() =>
    JSON.stringify({ cookie: document.cookie, local: { ...localStorage }, session: { ...sessionStorage } }),
  );
  for (const secret of secrets) {
    expect(html).not.toContain(secret);
    expect(scriptVisible).not.toContain(secret);
  }
  // HttpOnly: no script sees the session cookie.
  expect(await page.evaluate(() => document.cookie)).toBe("");
}

/**
 * Opens a graphql-ws socket from one of Hangar's own pages, as GraphiQL does
 * (connection_init without a key: the upgrade request's cookie is the
 * credential), and keeps a subscription on it.
 */
async function openSessionSocket(page: Page, target: TestHangar, modelId: string): Promise<void> {
  await page.evaluate(
    ({ url, modelId }) =>
      new Promise<void>((resolve, reject) => {
        const state: SocketState = { acknowledged: false, closed: null };
        (window as unknown as { hangarSocket: SocketState }).hangarSocket = state;
        const ws = new WebSocket(url, "graphql-transport-ws");
        ws.onopen = () => ws.send(JSON.stringify({ type: "connection_init", payload: {} }));
        ws.onmessage = (event) => {
          if (JSON.parse(event.data).type !== "connection_ack") return;
          state.acknowledged = true;
          const query = "subscription($id: ID!) { modelEvents(modelId: $id) { type } }";
          ws.send(
            JSON.stringify({ id: "1", type: "subscribe", payload: { query, variables: { id: modelId } } }),
          );
          resolve();
        };
        ws.onclose = (event) => {
          state.closed = event.code;
          reject(new Error(`closed with ${event.code}`));
        };
      }),
    { url: `${target.url.replace("http", "ws")}/graphql`, modelId },
  );
}

/** Calls the other origin's probes inside its page. */
function probesOn(page: Page) {
  return (fn: keyof Probes, ...args: unknown[]): Promise<unknown> =>
    page.evaluate(
      ({ fn, args }) => {
        const probes = (window as unknown as { probes: Record<string, (...a: unknown[]) => unknown> }).probes;
        return probes[fn]?.(...args);
      },
      { fn, args },
    );
}

/** What Monaco (GraphiQL's editors) shows, with its non-breaking spaces as spaces. */
async function shown(locator: Locator): Promise<string> {
  return ((await locator.textContent()) ?? "").replace(/\u00a0/g, " ");
}

function socketState(page: Page): Promise<SocketState> {
  return page.evaluate(() => (window as unknown as { hangarSocket: SocketState }).hangarSocket);
}

/** A POST /graphql from one of Hangar's pages, with its session cookie (fetch from the same origin). */
function fetchFromPage(page: Page, query: string): Promise<{ status: number; body: string }> {
  return page.evaluate(async (query) => {
    const response = await fetch("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query }),
    });
    return { status: response.status, body: await response.text() };
  }, query);
}

async function modelExists(target: TestHangar, name: string): Promise<boolean> {
  return (await gql(target, `query($name: String!) { model(name: $name) { id } }`, { name })).model !== null;
}

beforeAll(async () => {
  elsewhere = createServer((_req, res) => {
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" });
    res.end(`<!doctype html><title>elsewhere</title><script>${PROBES}</script><p>another origin</p>`);
  });
  await new Promise<void>((resolve) => elsewhere.listen(0, "127.0.0.1", resolve));
  elsewhereUrl = `http://127.0.0.1:${(elsewhere.address() as AddressInfo).port}`;
  [hangar, listing, browser] = await Promise.all([
    startHangar(),
    startHangar({ env: { HANGAR_CORS_ORIGINS: elsewhereUrl } }),
    launchBrowser(),
  ]);
  secrets.push(hangar.key, listing.key);
});

afterAll(async () => {
  for (const context of contexts) await context.close().catch(() => {});
  await browser?.close();
  await Promise.all([hangar?.dispose(), listing?.dispose()]);
  await new Promise((resolve) => elsewhere?.close(resolve));
});

describe("browser sign-in", () => {
  let admin: BrowserContext;

  it("prints a link that signs a browser in as admin once, and lands on /", async () => {
    const link = await printedLink(hangar);
    expect(link.startsWith(`${hangar.url}/sign-in/`)).toBe(true);
    // With the banner, never in the structured log.
    const token = secrets.at(-1) as string;
    for (const line of hangar.output().split("\n")) {
      if (line.trimStart().startsWith("{")) expect(line).not.toContain(token);
    }

    admin = await newPerson();
    const page = await admin.newPage();
    const landed = await page.goto(link);
    expect(page.url()).toBe(`${hangar.url}/`);
    expect(landed?.status()).toBe(200);
    const hop = await landed?.request().redirectedFrom()?.response();
    expect(hop?.status()).toBe(303);
    expect(hop?.headers().location).toBe("/");
    await expect(page.getByRole("main").textContent()).resolves.toContain("Signed in as admin (ADMIN)");
    expect(await page.getByRole("button", { name: "Sign out" }).count()).toBe(1);

    const [cookie, ...more] = await sessionCookie(admin, hangar);
    expect(more).toEqual([]);
    expect(cookie?.name).toMatch(/^hangar_session_[0-9a-f]{10}$/);
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/", secure: false });
    const hoursLeft = ((cookie?.expires ?? 0) * 1000 - Date.now()) / 3600_000;
    expect(hoursLeft).toBeGreaterThan(11.9);
    expect(hoursLeft).toBeLessThanOrEqual(12);
    secrets.push(cookie?.value as string);
    await expectNothingSecretIn(page);

    // A second use, in another browser: a page that says so, with the form, and no session.
    const other = await newPerson();
    const again = await other.newPage();
    const refused = await again.goto(link);
    expect(refused?.status()).toBe(401);
    expect(again.url()).toBe(link);
    await expect(again.getByRole("status").textContent()).resolves.toContain("used or has expired");
    expect(await again.getByLabel("API key").getAttribute("type")).toBe("password");
    expect(await sessionCookie(other, hangar)).toEqual([]);
    await expectNothingSecretIn(again);
  });

  it("runs GraphiQL on the session: its starting query, and a subscription over its WebSocket", async () => {
    const model = (await gql(hangar, CREATE_MODEL, { name: "graphiql-model" })).createModel;
    const history = await gql(hangar, `query($id: ID!) { model(id: $id) { events { edges { cursor } } } }`, {
      id: model.id,
    });
    const page = await admin.newPage();
    const violations: string[] = [];
    page.on("console", (message) => {
      if (/Content Security Policy/i.test(message.text())) violations.push(message.text());
    });
    const opened = await page.goto(`${hangar.url}/graphql`);
    expect(opened?.status()).toBe(200);
    expect(opened?.headers()["content-security-policy"]).toContain("frame-ancestors 'none'");
    const editor = page.locator(".graphiql-query-editor .monaco-editor").first();
    await editor.waitFor({ timeout: 30_000 });
    await waitFor(async () => (await shown(editor)).includes("query Overview"), {
      what: "GraphiQL's starting query",
    });
    await page.locator(".graphiql-execute-button").click();
    const response = page.locator(".graphiql-response");
    await waitFor(async () => (await shown(response)).includes('"graphiql-model"'), {
      what: "the query's answer",
    });
    expect(await shown(response)).toMatch(/"role": "ADMIN"/);

    // A subscription that replays what followed the model's first event (its production environment),
    // opened through GraphiQL's ?query= (typing into its editor races with the editor's own start).
    const cursor = history.model.events.edges[0].cursor;
    const subscription = `subscription { modelEvents(modelId: "${model.id}", after: "${cursor}") { type actor } }`;
    await page.goto(`${hangar.url}/graphql?query=${encodeURIComponent(subscription)}`);
    await waitFor(async () => (await shown(editor)).includes("modelEvents"), {
      what: "the subscription in GraphiQL",
    });
    const socket = page.waitForEvent("websocket");
    await page.locator(".graphiql-execute-button").click();
    expect((await socket).url()).toBe(`${hangar.url.replace("http", "ws")}/graphql`);
    await waitFor(async () => (await shown(response)).includes("ENVIRONMENT_CREATED"), {
      what: "the subscription's event in GraphiQL",
    });
    expect(violations).toEqual([]);
    await expectNothingSecretIn(page);
    expect(await page.getByRole("button", { name: "Sign out" }).count()).toBe(1);
    await page.close();
  });

  it("keeps every key and token out of the HTML of /, /sign-in and /graphql", async () => {
    await createKey(hangar, "some-deployer", "DEPLOYER");
    const [cookie] = await sessionCookie(admin, hangar);
    const header = `${cookie?.name}=${cookie?.value}`;
    for (const path of ["/", "/sign-in", "/graphql"]) {
      const { status, html } = await rawPage(hangar, path, header);
      expect(status, path).toBe(200);
      for (const secret of secrets) expect(html, path).not.toContain(secret);
      expect(html, path).toContain(`action="/sign-out"`);
    }
    const signedOut = await rawPage(hangar, "/sign-in", "");
    for (const secret of secrets) expect(signedOut.html).not.toContain(secret);
  });

  it("signs in with a VIEWER key on the form, with the VIEWER's permissions", async () => {
    const viewer = await createKey(hangar, "viewer <i>&</i>", "VIEWER");
    const person = await newPerson();
    const { page, status } = await signInWithForm(person, hangar, viewer.secret);
    expect(status).toBe(303);
    expect(page.url()).toBe(`${hangar.url}/`);
    // The key's name is shown as text, never as markup.
    await expect(page.getByRole("main").textContent()).resolves.toContain(
      "Signed in as viewer <i>&</i> (VIEWER)",
    );
    expect(await page.locator("main i").count()).toBe(0);

    const field = await rawPage(hangar, "/sign-in", "");
    expect(field.html).toMatch(/<label for="api-key">API key<\/label>/);
    expect(field.html).toMatch(/<input id="api-key" name="api_key" type="password" autocomplete="off"/);

    await page.goto(`${hangar.url}/graphql`);
    const read = await fetchFromPage(page, "{ viewer { name role } }");
    expect(JSON.parse(read.body).data.viewer).toEqual({ name: "viewer <i>&</i>", role: "VIEWER" });
    const write = await fetchFromPage(
      page,
      `mutation { createModel(input: { name: "by-viewer" }) { __typename } }`,
    );
    expect(write.status).toBe(200);
    expect(JSON.parse(write.body).errors[0].extensions.code).toBe("FORBIDDEN");
    expect(await modelExists(hangar, "by-viewer")).toBe(false);
    await expectNothingSecretIn(page);
  });

  it("ends the session on Sign out: 401 with the old cookie, / sends to /sign-in, its WebSocket closes", async () => {
    const person = await newPerson();
    const key = await createKey(hangar, "signs-out", "DEPLOYER");
    const { page } = await signInWithForm(person, hangar, key.secret);
    const [cookie] = await sessionCookie(person, hangar);
    const header = `${cookie?.name}=${cookie?.value}`;
    const model = (await gql(hangar, CREATE_MODEL, { name: "sign-out-model" })).createModel;
    await page.goto(`${hangar.url}/graphql`);
    await openSessionSocket(page, hangar, model.id);

    // The Sign out button of GraphiQL, in a second tab.
    const graphiql = await person.newPage();
    await graphiql.goto(`${hangar.url}/graphql`);
    await graphiql.getByRole("button", { name: "Sign out" }).click();
    await graphiql.waitForURL(`${hangar.url}/sign-in`);
    expect(await sessionCookie(person, hangar)).toEqual([]);

    const http = await fetch(`${hangar.url}/graphql`, {
      method: "POST",
      headers: { cookie: header, "content-type": "application/json" },
      body: JSON.stringify({ query: "{ viewer { name } }" }),
    });
    expect(http.status).toBe(401);
    const home = await rawPage(hangar, "/", header);
    expect(home.status).toBe(303);
    await graphiql.goto(`${hangar.url}/`);
    expect(graphiql.url()).toBe(`${hangar.url}/sign-in`);
    // Closed within 5 s by design (the credential cache's TTL plus the socket sweep, checked in
    // api-keys.test.ts; the wall time is bench/revocation.ts's figure): here, that it closes.
    const closed = await waitFor(async () => (await socketState(page)).closed, {
      what: "the signed-out session's WebSocket to close",
    });
    expect(closed).toBe(4403);
  });

  it("ends a revoked key's sessions within 5 s, WebSocket included", async () => {
    const person = await newPerson();
    const key = await createKey(hangar, "revoked-later", "DEPLOYER");
    const { page } = await signInWithForm(person, hangar, key.secret);
    const model = (await gql(hangar, CREATE_MODEL, { name: "revocation-model" })).createModel;
    await page.goto(`${hangar.url}/graphql`);
    expect((await fetchFromPage(page, "{ viewer { name } }")).status).toBe(200);
    await openSessionSocket(page, hangar, model.id);
    expect((await socketState(page)).acknowledged).toBe(true);

    expect((await gql(hangar, REVOKE_KEY, { id: key.id })).revokeApiKey.__typename).toBe("ApiKey");
    // Closed within 5 s by design (the credential cache's TTL plus the socket sweep, checked in
    // api-keys.test.ts; the wall time is bench/revocation.ts's figure): here, that it closes.
    const closed = await waitFor(async () => (await socketState(page)).closed, {
      what: "the revoked key's session WebSocket to close",
    });
    expect(closed).toBe(4403);
    expect((await fetchFromPage(page, "{ viewer { name } }")).status).toBe(401);
    await page.goto(`${hangar.url}/`);
    expect(page.url()).toBe(`${hangar.url}/sign-in`);
  });

  it("gives a page of another origin no answers, no mutation and no WebSocket, even with the cookie sent", async () => {
    const person = await newPerson();
    const { page: own } = await signInWithForm(person, hangar, hangar.key);
    expect(own.url()).toBe(`${hangar.url}/`);
    // GraphiQL's page may fetch (connect-src 'self'); the home page may not fetch at all.
    await own.goto(`${hangar.url}/graphql`);
    const [cookie] = await sessionCookie(person, hangar);
    const header = `${cookie?.name}=${cookie?.value}`;

    const page = await person.newPage();
    await page.goto(`${elsewhereUrl}/`);
    const probes = probesOn(page);
    const mutation = (name: string) => ({
      query: `mutation { createModel(input: { name: "${name}" }) { __typename } }`,
    });
    expect(await probes("postJson", `${hangar.url}/graphql`, mutation("evil-json"), {}, "include")).toBe(
      "failed: TypeError",
    );
    expect(await probes("postSimple", `${hangar.url}/graphql`, JSON.stringify(mutation("evil-simple")))).toBe(
      "opaque",
    );
    expect(await probes("postSimple", `${hangar.url}/sign-out`, "")).toBe("opaque");
    expect(
      await probes("read", `${hangar.url}/graphql?query=${encodeURIComponent("{ viewer { name } }")}`),
    ).toBe("failed: TypeError");
    expect(await probes("socket", `${hangar.url.replace("http", "ws")}/graphql`, {})).toBe("closed 1006");

    // Nothing happened, and the session (not signed out by the cross-site POST) still works from Hangar's own page.
    expect(await modelExists(hangar, "evil-json")).toBe(false);
    expect(await modelExists(hangar, "evil-simple")).toBe(false);
    expect((await fetchFromPage(own, "{ viewer { name } }")).status).toBe(200);
    // What the browser sent, sent by hand: the Origin makes Hangar ignore the cookie, or refuse outright.
    const asElsewhere = { cookie: header, origin: elsewhereUrl, "content-type": "application/json" };
    const read = await fetch(`${hangar.url}/graphql?query=${encodeURIComponent("{ viewer { name } }")}`, {
      headers: asElsewhere,
    });
    expect(read.status).toBe(401);
    expect(read.headers.get("access-control-allow-origin")).toBeNull();
    const write = await fetch(`${hangar.url}/graphql`, {
      method: "POST",
      headers: asElsewhere,
      body: JSON.stringify(mutation("evil-by-hand")),
    });
    expect(write.status).toBe(403);
    expect(await write.json()).toMatchObject({ error_code: "forbidden" });
    const preflight = await fetch(`${hangar.url}/graphql`, {
      method: "OPTIONS",
      headers: { origin: elsewhereUrl, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(403);
    await expectNothingSecretIn(own);
  });

  it("lets a listed origin call the API with a bearer key, never with the session", async () => {
    const person = await newPerson();
    const landed = await (await person.newPage()).goto(await printedLink(listing));
    expect(landed?.url()).toBe(`${listing.url}/`);
    const [cookie] = await sessionCookie(person, listing);
    const header = `${cookie?.name}=${cookie?.value}`;

    const page = await person.newPage();
    await page.goto(`${elsewhereUrl}/`);
    const probes = probesOn(page);
    const viewer = { query: "{ viewer { name role } }" };
    const withKey = (await probes(
      "postJson",
      `${listing.url}/graphql`,
      viewer,
      {
        authorization: `Bearer ${listing.key}`,
      },
      "omit",
    )) as { status: number; body: string };
    expect(withKey.status).toBe(200);
    expect(JSON.parse(withKey.body).data.viewer).toEqual({ name: "admin", role: "ADMIN" });
    // The gateway too: its error is readable.
    const gateway = (await probes(
      "postJson",
      `${listing.url}/models/mdl_AAAAAAAAAAAAAAAA/predict`,
      {},
      {
        authorization: `Bearer ${listing.key}`,
      },
      "omit",
    )) as { status: number; body: string };
    expect(gateway.status).toBe(404);
    expect(JSON.parse(gateway.body).error_code).toBe("model_does_not_exist");
    // Cookie only: no Allow-Credentials, so the browser refuses; and Hangar would not have counted it.
    expect(await probes("postJson", `${listing.url}/graphql`, viewer, {}, "include")).toBe(
      "failed: TypeError",
    );
    const byHand = await fetch(`${listing.url}/graphql`, {
      method: "POST",
      headers: { cookie: header, origin: elsewhereUrl, "content-type": "application/json" },
      body: JSON.stringify(viewer),
    });
    expect(byHand.status).toBe(401);
    expect(byHand.headers.get("access-control-allow-origin")).toBe(elsewhereUrl);
    expect(byHand.headers.get("access-control-allow-credentials")).toBeNull();
    const preflight = await fetch(`${listing.url}/graphql`, {
      method: "OPTIONS",
      headers: { origin: elsewhereUrl, "access-control-request-method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("access-control-allow-origin")).toBe(elsewhereUrl);
    // The WebSocket: with a key in connection_init it opens; on the cookie alone it is closed.
    const ws = `${listing.url.replace("http", "ws")}/graphql`;
    expect(await probes("socket", ws, { authorization: `Bearer ${listing.key}` })).toBe("acknowledged");
    expect(await probes("socket", ws, {})).toBe("closed 4403");
  });

  it("names each Hangar's cookie for its installation: two on one host keep separate sessions", async () => {
    // `admin` is signed in to the first Hangar; sign the same browser in to the second.
    expect((await signInWithForm(admin, listing, listing.key)).status).toBe(303);
    const [first] = await sessionCookie(admin, hangar);
    const names = new Set((await admin.cookies()).map((c) => c.name));
    expect(names.size).toBe(2);
    for (const name of names) expect(name).toMatch(/^hangar_session_[0-9a-f]{10}$/);
    expect(first && names.has(first.name)).toBe(true);
    const page = await admin.newPage();
    await page.goto(`${listing.url}/`);
    await expect(page.getByRole("main").textContent()).resolves.toContain("Signed in as admin");
    await page.goto(`${hangar.url}/`);
    expect(page.url()).toBe(`${hangar.url}/`);
  });

  it("refuses INFERENCE and wrong keys on the form, and the 11th failed sign-in within a minute with 429", async () => {
    // On the second Hangar: nothing has failed there yet (failures count per address, and the tests share one).
    const inference = await createKey(listing, "inference-only", "INFERENCE");
    const person = await newPerson();
    const first = await signInWithForm(person, listing, inference.secret);
    expect(first.status).toBe(403);
    await expect(first.page.getByRole("alert").textContent()).resolves.toContain(
      "INFERENCE keys cannot sign in",
    );
    expect(await first.page.getByLabel("API key").inputValue()).toBe("");
    const wrongKey = `hk_${"x".repeat(40)}`;
    const second = await signInWithForm(person, listing, wrongKey);
    expect(second.status).toBe(401);
    await expect(second.page.getByRole("alert").textContent()).resolves.toContain(
      "wrong, revoked or expired",
    );
    expect(await second.page.content()).not.toContain(wrongKey);
    expect(await sessionCookie(person, listing)).toEqual([]);

    const post = (key: string) =>
      fetch(`${listing.url}/sign-in`, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ api_key: key }),
        redirect: "manual",
      });
    for (let attempt = 3; attempt <= 10; attempt++)
      expect((await post(`${wrongKey}${attempt}`)).status).toBe(401);
    const limited = await post(`${wrongKey}11`);
    expect(limited.status).toBe(429);
    const wait = Number(limited.headers.get("retry-after"));
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(60);
    expect(await limited.text()).toMatch(/Too many failed sign-ins .* Try again in \d+ seconds?\./);
    // While limited even the right key is not tried (else the limit would tell which guess was right).
    expect((await post(listing.key)).status).toBe(429);
  });
});
