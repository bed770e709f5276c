// Scheduled jobs (stack config `jobs.<name>: {schedule, command}`; the agent's jobs-* verbs in
// scripts/agent/fdeploy_agent/jobs.py): a systemd timer
// and a oneshot service per job that runs the command in the live release (APP_ROOT/current, so a
// job follows every switch and rollback), as the app user, with the app's environment file and the
// slots' sandbox, logging to the journal. Two steps, both only when jobs are configured:
//   JobScheduleCheck  before anything on the server changes (the base system waits for it): the
//                     server's own `systemd-analyze calendar` accepts every schedule
//   ScheduledJobs     after the switch (a new job's first run meets the release it was written
//                     for): the units written, timers on, units of jobs no longer configured removed.
//                     Its inputs are the job definitions, so `pulumi preview --diff` shows a change.
//                     Deleting it (the last job removed from config, or `pulumi destroy`) runs
//                     the agent's `jobs-delete --app <app>`: every job unit of the app goes.
import * as pulumi from "@pulumi/pulumi";
import * as command from "@pulumi/command";
import { JobConfig } from "./config";
import { Connection } from "./connection";
import { AGENT, remoteStep, ScriptBundle, scriptParams } from "./remote-script";

export interface JobsArgs {
  connection: Connection;
  bundle: ScriptBundle;
  appName: string;
  jobs: Record<string, JobConfig>;
  after?: pulumi.Resource[];
}

/** The job definitions as the agent's jobs-* verbs take them: a JSON object in name order. */
export function jobsParam(jobs: Record<string, JobConfig>): string {
  const sorted = Object.fromEntries(Object.keys(jobs).sort().map((n) => [n, { schedule: jobs[n].schedule, command: jobs[n].command }]));
  return JSON.stringify(sorted);
}

export class JobScheduleCheck extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;

  constructor(name: string, args: JobsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:JobScheduleCheck", name, {}, opts);
    const schedules = Object.fromEntries(Object.entries(args.jobs).map(([n, j]) => [n, { schedule: j.schedule, command: "-" }]));
    this.step = remoteStep(`${name}-check`, {
      connection: args.connection, bundle: args.bundle, script: AGENT, verb: "jobs-check",
      params: scriptParams({ APP: args.appName, JOBS: jobsParam(schedules) }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}

export class ScheduledJobs extends pulumi.ComponentResource {
  public readonly step: command.remote.Command;

  constructor(name: string, args: JobsArgs, opts?: pulumi.ComponentResourceOptions) {
    super("flaskdeploy:index:ScheduledJobs", name, {}, opts);
    this.step = remoteStep(`${name}-timers`, {
      connection: args.connection, bundle: args.bundle, script: AGENT, verb: "jobs-create", deleteWith: args.appName, deleteVerb: "jobs-delete",
      params: scriptParams({ APP: args.appName, JOBS: jobsParam(args.jobs) }),
      after: args.after,
    }, this);
    this.registerOutputs({});
  }
}
