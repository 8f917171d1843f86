/**
 * The echo model the throughput benchmarks serve (it answers its input, so that the model costs next
 * to nothing and the hops are what is measured), the request they send, and the check that a target
 * answers it back before any load.
 */
import { type Dispatcher, fetch as undiciFetch } from "undici";

export const ECHO_MODEL = `// The benchmark's model: it answers its input, so that the model costs (almost) nothing.
export default class Model {
  predict(input) {
    return input;
  }
}
`;

export const REQUEST_BODY = JSON.stringify({ inputs: [0.5, 1.5, 2.5], text: "hangar gateway benchmark" });

/**
 * POSTs REQUEST_BODY to `url` and checks that the answer is a 200 with the same JSON; answers its
 * headers. `what` names the target in the error.
 */
export async function checkEcho(
  what: string,
  url: string,
  headers: Record<string, string>,
  dispatcher?: Dispatcher,
): Promise<Headers> {
  const response = await undiciFetch(url, {
    method: "POST",
    headers,
    body: REQUEST_BODY,
    ...(dispatcher ? { dispatcher } : {}),
  });
  const text = await response.text();
  let echoed = false;
  try {
    echoed = JSON.stringify(JSON.parse(text)) === REQUEST_BODY;
  } catch {
    // Not JSON: reported below.
  }
  if (response.status !== 200 || !echoed) throw new Error(`${what} answered ${response.status} ${text}`);
  return response.headers as unknown as Headers;
}
