/** Model rows: a model is created with its production environment, in one place. */
import type { Tx } from "../db/client.ts";
import { DEFAULT_AUTOSCALING } from "../domain/autoscaling.ts";
import { newId } from "../domain/ids.ts";
import { PRODUCTION_ENVIRONMENT_NAME } from "../domain/names.ts";
import { appendEvent } from "../events/log.ts";
import type { Model } from "../generated/prisma/client.ts";

/** Creates a model and its production environment, which exists from the start. */
export async function insertModel(tx: Tx, name: string): Promise<Model> {
  const model = await tx.model.create({ data: { id: newId("Model"), name, liveName: name } });
  await appendEvent(tx, { modelId: model.id, type: "MODEL_CREATED", message: `model '${name}' created` });
  const production = await tx.environment.create({
    data: {
      id: newId("Environment"),
      modelId: model.id,
      name: PRODUCTION_ENVIRONMENT_NAME,
      liveName: PRODUCTION_ENVIRONMENT_NAME,
      isProduction: true,
      autoscaling: { ...DEFAULT_AUTOSCALING },
    },
  });
  await appendEvent(tx, {
    modelId: model.id,
    type: "ENVIRONMENT_CREATED",
    environmentId: production.id,
    message: "environment 'production' created",
  });
  return model;
}
