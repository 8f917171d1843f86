import { builder } from "./builder.ts";
import "./scalars.ts";
import "./errors.ts";
import "./node.ts";
import "./autoscaling.ts";
import "./resources.ts";
import "./event.ts";
import "./model.ts";
import "./environment.ts";
import "./deployment.ts";
import "./members.ts";
import "./usage.ts";
import "./traffic.ts";
import "./promotion.ts";
import "./api-key.ts";
import "./webhooks.ts";
import "./server-info.ts";

export const schema = builder.toSchema({ sortSchema: false });
