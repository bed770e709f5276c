// bench/speed.ts floor A: an empty Pulumi program — the SDK loaded, no resources.
import * as pulumi from "@pulumi/pulumi";

export const stack = pulumi.getStack();
