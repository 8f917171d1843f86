import { gql } from "./client.ts";
import type { TestHangar } from "./hangar.ts";

export interface RecordedEvent {
  type: string;
  message: string | null;
  deployment: { id: string } | null;
  promotion: { id: string } | null;
}

/**
 * The model's newest event cursor now (null before its first event). Taken
 * before an action, it lets a test replay everything the action caused, from
 * its very first event, however fast the server was.
 */
export async function latestCursor(hangar: TestHangar, modelId: string): Promise<string | null> {
  const data = await gql(
    hangar,
    `query($id: ID!) { model(id: $id) { events(last: 1) { edges { cursor } } } }`,
    { id: modelId },
  );
  return data.model.events.edges[0]?.cursor ?? null;
}

/** Every event of the model after `cursor` (from the first when null), in order, every page read. */
export async function eventsAfter(
  hangar: TestHangar,
  modelId: string,
  cursor: string | null,
): Promise<RecordedEvent[]> {
  const events: RecordedEvent[] = [];
  let after = cursor;
  for (;;) {
    const data = await gql(
      hangar,
      `query($id: ID!, $after: String) {
        model(id: $id) {
          events(first: 100, after: $after) {
            edges { node { type message deployment { id } promotion { id } } }
            pageInfo { hasNextPage endCursor }
          }
        }
      }`,
      { id: modelId, after },
    );
    const page = data.model.events;
    events.push(...page.edges.map((edge: { node: RecordedEvent }) => edge.node));
    if (!page.pageInfo.hasNextPage) return events;
    after = page.pageInfo.endCursor;
  }
}
