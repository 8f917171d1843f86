/**
 * How a subscription field may be shared between identical subscriptions (the transport that
 * shares them is http/shared-subscriptions.ts). Declared here, on the field, because only the field
 * knows whether its results depend on who asks or when they joined:
 *
 * - `latest`: every message is the whole current state (promotionProgress, deploymentStatus). A
 *   joiner's first message is that state resolved as it is when it joins, then every later one.
 * - `live`: a stream of new things with no first message (modelEvents without `after`,
 *   deploymentLogs). A joiner gets what comes after it joined.
 */
export type SharingMode = "latest" | "live";
/** A field's sharing: a mode, or a mode chosen from its argument values (null: not shared). */
export type SharingRule = SharingMode | ((args: Record<string, unknown>) => SharingMode | null);

/** The extension key under which a subscription field declares its SharingRule. */
export const SHARING = "hangarSharing";
