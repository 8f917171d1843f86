import type { AutoscalingSettings } from "../domain/autoscaling.ts";
import { builder } from "./builder.ts";

export const AutoscalingSettingsRef = builder
  .objectRef<AutoscalingSettings>("AutoscalingSettings")
  .implement({
    fields: (t) => ({
      minReplica: t.exposeInt("minReplica"),
      maxReplica: t.exposeInt("maxReplica"),
      autoscalingWindow: t.exposeInt("autoscalingWindow"),
      scaleDownDelay: t.exposeInt("scaleDownDelay"),
      concurrencyTarget: t.exposeInt("concurrencyTarget"),
      targetUtilizationPercentage: t.exposeInt("targetUtilizationPercentage"),
    }),
  });

export const AutoscalingSettingsInput = builder.inputType("AutoscalingSettingsInput", {
  description: "Only the fields sent change",
  fields: (t) => ({
    minReplica: t.int(),
    maxReplica: t.int(),
    autoscalingWindow: t.int(),
    scaleDownDelay: t.int(),
    concurrencyTarget: t.int(),
    targetUtilizationPercentage: t.int(),
  }),
});
