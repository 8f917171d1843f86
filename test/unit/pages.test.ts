import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  escapeHtml,
  GRAPHIQL_OPTIONS,
  hangarGraphiQL,
  homePage,
  PAGE_CSP,
  pageHeaders,
  signInPage,
} from "../../src/http/pages.ts";

describe("Hangar's pages", () => {
  it("escape what they interpolate", () => {
    expect(escapeHtml(`<a href="x">'&'</a>`)).toBe("&#60;a href=&#34;x&#34;&#62;&#39;&#38;&#39;&#60;/a&#62;");
    const home = homePage({ name: `<script>alert("x")</script>`, role: "VIEWER" });
    expect(home).not.toContain("<script");
    expect(home).toContain("&#60;script&#62;");
    const signIn = signInPage({
      error: "<img src=x onerror=alert(1)>",
      viewer: { name: "<b>", role: "ADMIN" },
    });
    expect(signIn).not.toContain("<img");
    expect(signIn).not.toContain("<b>");
  });

  it("offer a labelled password field that browsers do not fill or keep, and a Sign in button", () => {
    const page = signInPage();
    expect(page).toContain(`<label for="api-key">API key</label>`);
    expect(page).toMatch(/<input id="api-key" name="api_key" type="password" autocomplete="off"/);
    expect(page).toContain(`<button type="submit">Sign in</button>`);
    expect(page).not.toContain("Sign out");
    expect(signInPage({ viewer: { name: "a", role: "ADMIN" } })).toContain(`action="/sign-out"`);
    expect(homePage({ name: "a", role: "ADMIN" })).toContain(`<button type="submit">Sign out</button>`);
  });

  it("need no script, and allow only their own stylesheet, and no framing", () => {
    for (const page of [signInPage(), homePage({ name: "a", role: "ADMIN" })]) {
      expect(page).not.toContain("<script");
      const style = /<style>([\s\S]*?)<\/style>/.exec(page)?.[1] ?? "";
      const hash = createHash("sha256").update(style).digest("base64");
      expect(PAGE_CSP).toContain(`style-src 'sha256-${hash}'`);
    }
    expect(PAGE_CSP).toContain("default-src 'none'");
    expect(PAGE_CSP).toContain("frame-ancestors 'none'");
    expect(PAGE_CSP).not.toContain("unsafe");
    expect(pageHeaders(PAGE_CSP)).toMatchObject({ "x-frame-options": "DENY", "cache-control": "no-store" });
  });
});

describe("GraphiQL page", () => {
  const { html, csp } = hangarGraphiQL(GRAPHIQL_OPTIONS);

  it("allows exactly its one inline script, by hash", () => {
    // The parser ends a script at the first "</script": one of those means one script element.
    expect(html.match(/<\/script/gi) ?? []).toHaveLength(1);
    const start = html.indexOf("<script>") + "<script>".length;
    const source = html.slice(start, html.indexOf("</script", start));
    const hash = createHash("sha256").update(source).digest("base64");
    expect(csp).toContain(`script-src 'sha256-${hash}';`);
    expect(csp).not.toContain("unsafe-eval");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).toContain("connect-src 'self'");
  });

  it("has Hangar's Sign out button and starting query, and no credential", () => {
    expect(html).toContain(
      `<form method="post" action="/sign-out"><button type="submit">Sign out</button></form>`,
    );
    expect(html).toContain(JSON.stringify(GRAPHIQL_OPTIONS.defaultQuery));
    expect(GRAPHIQL_OPTIONS.defaultQuery).toContain("viewer { name role }");
    expect(html).not.toMatch(/hk_[A-Za-z0-9_-]{32,}/);
  });
});
