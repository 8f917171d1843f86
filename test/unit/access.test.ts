import { describe, expect, it } from "vitest";
import {
  type Access,
  accessFingerprint,
  allows,
  gatewayDecision,
  isUnrestricted,
  mayActOnDeployment,
  maySignIn,
  seesModel,
} from "../../src/domain/access.ts";

const key = (over: Partial<Access>): Access => ({
  keyId: "key_x",
  name: "k",
  role: "DEPLOYER",
  modelIds: null,
  environments: null,
  ...over,
});

describe("the permission matrix", () => {
  it("gives each role its operations", () => {
    const table = (["ADMIN", "DEPLOYER", "VIEWER", "INFERENCE"] as const).map((role) =>
      (["identify", "read", "write", "manageKeys"] as const).filter((op) => allows(key({ role }), op)),
    );
    expect(table).toEqual([
      ["identify", "read", "write", "manageKeys"],
      ["identify", "read", "write"],
      ["identify", "read"],
      ["identify"],
    ]);
  });

  it("hides models outside modelIds and limits creation to unrestricted keys", () => {
    const scoped = key({ modelIds: ["mdl_a"] });
    expect(seesModel(scoped, "mdl_a")).toBe(true);
    expect(seesModel(scoped, "mdl_b")).toBe(false);
    expect(isUnrestricted(scoped)).toBe(false);
    expect(isUnrestricted(key({ environments: ["staging"] }))).toBe(false);
    expect(isUnrestricted(key({}))).toBe(true);
  });

  it("acts on a deployment only when every environment it is in is listed", () => {
    const staging = key({ environments: ["staging"] });
    expect(mayActOnDeployment(staging, [])).toBe(true);
    expect(mayActOnDeployment(staging, ["staging"])).toBe(true);
    expect(mayActOnDeployment(staging, ["staging", "production"])).toBe(false);
  });

  it("decides gateway paths: scope first, then role and environments", () => {
    const production = { kind: "environment", name: "production" } as const;
    const staging = { kind: "environment", name: "staging" } as const;
    expect(gatewayDecision(key({ role: "VIEWER" }), "mdl_a", production)).toBe("forbidden");
    expect(gatewayDecision(key({ role: "VIEWER", modelIds: ["mdl_b"] }), "mdl_a", production)).toBe(
      "model_does_not_exist",
    );
    const inference = key({ role: "INFERENCE", environments: ["production"] });
    expect(gatewayDecision(inference, "mdl_a", production)).toBe("allow");
    expect(gatewayDecision(inference, "mdl_a", staging)).toBe("forbidden");
    expect(gatewayDecision(inference, "mdl_a", { kind: "deployment" })).toBe("forbidden");
    expect(gatewayDecision(inference, "mdl_a", { kind: "development" })).toBe("forbidden");
    // Environments limit an INFERENCE key's paths only; a DEPLOYER's limit is on actions.
    expect(gatewayDecision(key({ environments: ["staging"] }), "mdl_a", production)).toBe("allow");
  });

  it("lets keys share subscriptions only when they see and may do the same", () => {
    const a = key({ keyId: "key_a", name: "a", modelIds: ["mdl_2", "mdl_1"] });
    const b = key({ keyId: "key_b", name: "b", modelIds: ["mdl_1", "mdl_2"] });
    expect(accessFingerprint(a)).toBe(accessFingerprint(b));
    expect(accessFingerprint(a)).not.toBe(accessFingerprint(key({ modelIds: ["mdl_1"] })));
    expect(accessFingerprint(a)).not.toBe(accessFingerprint({ ...b, role: "VIEWER" }));
    expect(accessFingerprint(key({}))).not.toBe(accessFingerprint(key({ environments: ["staging"] })));
  });

  it("refuses browser sign-in to INFERENCE keys", () => {
    expect(maySignIn(key({ role: "INFERENCE" }))).toBe(false);
    expect(maySignIn(key({ role: "VIEWER" }))).toBe(true);
  });
});
