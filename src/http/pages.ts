import { createHash } from "node:crypto";
import type { ServerResponse } from "node:http";
import { renderGraphiQL } from "@graphql-yoga/render-graphiql";
import type { GraphiQLOptions } from "graphql-yoga";

/**
 * The HTML Hangar serves itself: the sign-in page, the home page (until the
 * dashboard exists) and the wrapping of GraphiQL. Every interpolated value is
 * escaped, and no page ever holds a key or a token (API.md section 7).
 */

export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function sha256Source(text: string): string {
  return `'sha256-${createHash("sha256").update(text, "utf8").digest("base64")}'`;
}

const STYLE = `
:root { color-scheme: light dark; font-family: system-ui, sans-serif; line-height: 1.5; }
body { margin: 0; }
header { display: flex; align-items: center; gap: 1rem; padding: 0.5rem 1.5rem; border-bottom: 1px solid #8884; }
header .brand { font-weight: 600; margin-right: auto; }
header form { margin: 0; }
main { max-width: 32rem; margin: 2rem auto; padding: 0 1.5rem; }
label { display: block; font-weight: 600; margin-bottom: 0.25rem; }
input { box-sizing: border-box; width: 100%; padding: 0.5rem; font: inherit; font-family: ui-monospace, monospace; }
button { font: inherit; padding: 0.4rem 1rem; cursor: pointer; }
main form button { margin-top: 0.75rem; }
.error { border-left: 4px solid #c33; padding: 0.5rem 0.75rem; background: #c331; }
.notice { border-left: 4px solid #38c; padding: 0.5rem 0.75rem; background: #38c1; }
.hint { color: GrayText; font-size: 0.9rem; }
`;

/**
 * Hangar's own pages need no script at all, and their one stylesheet is
 * allowed by hash: an injected tag could neither run nor style anything,
 * nor could another site frame the page (clickjacking the Sign in button).
 */
export const PAGE_CSP = [
  "default-src 'none'",
  `style-src ${sha256Source(STYLE)}`,
  "img-src 'self'",
  "form-action 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
].join("; ");

/** Headers every HTML answer of Hangar carries. */
export function pageHeaders(csp: string): Record<string, string> {
  return {
    "content-type": "text/html; charset=utf-8",
    "content-security-policy": csp,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    // The sign-in link's URL holds its token: no Referer leaves Hangar. (Not no-referrer:
    // then Chromium sends `Origin: null` with the forms' POSTs, which origin.ts refuses.)
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
  };
}

export function sendPage(
  res: ServerResponse,
  status: number,
  html: string,
  headers: Record<string, string | string[]> = {},
): void {
  res.writeHead(status, { ...pageHeaders(PAGE_CSP), "content-length": Buffer.byteLength(html), ...headers });
  res.end(html);
}

/** The small form behind every page's "Sign out" button (a POST: a link could be triggered by another site). */
const SIGN_OUT_FORM = `<form method="post" action="/sign-out"><button type="submit">Sign out</button></form>`;

function layout(title: string, body: string, signedIn: boolean): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)} · Hangar</title>
<style>${STYLE}</style>
</head>
<body>
<header><span class="brand">Hangar</span>${signedIn ? `<a href="/">Home</a><a href="/graphql">GraphiQL</a>${SIGN_OUT_FORM}` : ""}</header>
<main>
${body}
</main>
</body>
</html>
`;
}

export interface Viewer {
  name: string;
  role: string;
}

export interface SignInPageOptions {
  /** Why the last attempt failed (role="alert"). */
  error?: string;
  /** Something to know that is no failure of the form, e.g. a used link. */
  notice?: string;
  /** The browser is signed in already: say as whom, and offer Sign out. */
  viewer?: Viewer | null;
}

export function signInPage(options: SignInPageOptions = {}): string {
  const { error, notice, viewer } = options;
  const parts = [`<h1>Sign in to Hangar</h1>`];
  if (notice) parts.push(`<p class="notice" role="status">${escapeHtml(notice)}</p>`);
  if (error) parts.push(`<p class="error" role="alert" id="sign-in-error">${escapeHtml(error)}</p>`);
  if (viewer) {
    parts.push(
      `<p>You are signed in as <strong>${escapeHtml(viewer.name)}</strong> (${escapeHtml(viewer.role)}). Signing in again replaces that session.</p>`,
    );
  }
  const described = error ? ` aria-describedby="sign-in-error" aria-invalid="true"` : "";
  parts.push(
    `<form method="post" action="/sign-in">
<label for="api-key">API key</label>
<input id="api-key" name="api_key" type="password" autocomplete="off" autocapitalize="off" spellcheck="false" required${described}>
<button type="submit">Sign in</button>
</form>`,
    `<p class="hint">An ADMIN, DEPLOYER or VIEWER key signs you in with its permissions for up to 12 hours. When Hangar starts it prints a one-use sign-in link for its admin key.</p>`,
  );
  return layout("Sign in", parts.join("\n"), Boolean(viewer));
}

export function homePage(viewer: Viewer): string {
  const body = `<h1>Hangar</h1>
<p>Signed in as <strong>${escapeHtml(viewer.name)}</strong> (${escapeHtml(viewer.role)}).</p>
<ul>
<li><a href="/graphql">GraphiQL</a>: query, change and watch models, deployments and promotions with this key's permissions.</li>
</ul>`;
  return layout("Home", body, true);
}

/** What GraphiQL opens with when the browser has no tabs of its own yet. */
export const GRAPHIQL_DEFAULT_QUERY = `# Hangar's GraphQL API. This browser is signed in:
# everything runs with the permissions of its key.
#
# Run with Ctrl-Enter or the run button; the docs
# (on the left) list every type and field.
# Subscriptions stream over a WebSocket, e.g.
#
#   subscription {
#     promotionProgress(promotionId: "prm_...") {
#       status percentTrafficToNewVersion
#       steps { name status }
#     }
#   }

query Overview {
  viewer { name role }
  models(first: 20) {
    edges {
      node {
        id
        name
        environments {
          name
          predictUrl
          currentDeployment { id name status activeReplicaCount }
          inProgressPromotion { id status percentTrafficToNewVersion steps { name status } }
        }
      }
    }
  }
}
`;

/** yoga's GraphiQL options: Hangar's title and starting query; subscriptions over graphql-ws. */
export const GRAPHIQL_OPTIONS: GraphiQLOptions = {
  title: "Hangar GraphiQL",
  subscriptionsProtocol: "WS",
  defaultQuery: GRAPHIQL_DEFAULT_QUERY,
};

// render-graphiql's page holds one inline <style> and one inline <script> (its whole
// bundle); these marks are where Hangar's bar goes. A new version without them fails at once.
const HEAD_MARK = `<meta charset="utf-8" />`;
const ROOT_MARK = `<div id="root"></div>`;

const GRAPHIQL_BAR_STYLE = `
.hangar-bar { display: flex; align-items: center; gap: 1rem; box-sizing: border-box; height: 2.5rem;
  padding: 0 1rem; font: 14px system-ui, sans-serif; border-bottom: 1px solid #8884; }
.hangar-bar .brand { font-weight: 600; margin-right: auto; }
.hangar-bar a { color: inherit; }
.hangar-bar form { margin: 0; }
.hangar-bar button { font: inherit; padding: 0.2rem 0.8rem; cursor: pointer; }
.graphiql-container { height: calc(100vh - 2.5rem) !important; }
`;

const GRAPHIQL_BAR = `<header class="hangar-bar"><span class="brand">Hangar</span><a href="/">Home</a>${SIGN_OUT_FORM}</header>`;

interface RenderedGraphiQL {
  html: string;
  csp: string;
}

const rendered = new Map<string, RenderedGraphiQL>();

/**
 * render-graphiql's page with Hangar's bar (Home, Sign out) above GraphiQL,
 * and the Content-Security-Policy that lets exactly its script run (by hash).
 * The page depends only on the options, so it is built once per options.
 */
export function hangarGraphiQL(options: GraphiQLOptions = GRAPHIQL_OPTIONS): RenderedGraphiQL {
  const cacheKey = JSON.stringify(options);
  const known = rendered.get(cacheKey);
  if (known) return known;
  const page = renderGraphiQL(options);
  const script = page.indexOf("<script>");
  const root = page.indexOf(ROOT_MARK);
  const head = page.indexOf(HEAD_MARK);
  if (script < 0 || root < 0 || head < 0 || root > script || head > root) {
    throw new Error("@graphql-yoga/render-graphiql's page changed its shape: update src/http/pages.ts");
  }
  const scriptEnd = page.indexOf("</script", script);
  const source = page.slice(script + "<script>".length, scriptEnd);
  const withBar =
    page.slice(0, head + HEAD_MARK.length) +
    `<style>${GRAPHIQL_BAR_STYLE}</style>` +
    page.slice(head + HEAD_MARK.length, root) +
    GRAPHIQL_BAR +
    page.slice(root);
  const csp = [
    "default-src 'none'",
    `script-src ${sha256Source(source)}`,
    // The editor (Monaco) adds style elements and attributes as it runs.
    "style-src 'unsafe-inline'",
    // Its workers are Blob URLs made by that script; its icons and fonts are data: URLs.
    "worker-src blob:",
    "img-src 'self' data: blob:",
    "font-src data:",
    // Queries by fetch and subscriptions by WebSocket, both to Hangar only.
    "connect-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ].join("; ");
  const result = { html: withBar, csp };
  rendered.set(cacheKey, result);
  return result;
}

/** yoga's renderGraphiQL option: the page above. */
export function renderHangarGraphiQL(options: GraphiQLOptions): string {
  return hangarGraphiQL(options).html;
}

/** Headers for the GraphiQL answer, set before yoga writes it (yoga merges them with its own). */
export function setGraphiQLHeaders(res: ServerResponse, options: GraphiQLOptions = GRAPHIQL_OPTIONS): void {
  for (const [name, value] of Object.entries(pageHeaders(hangarGraphiQL(options).csp))) {
    res.setHeader(name, value);
  }
}
