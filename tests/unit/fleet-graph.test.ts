// A FlaskApp on two servers behind a balancer, under Pulumi mocks: every host gets the whole app tier
// (names of the second end in -h2), migrations run on the first only, one FleetSwitch waits for every
// host's staging and drives the switch, and each host's site and state come after it. A one-server app
// in the same program has none of it.
import * as assert from "assert";
import * as fs from "fs";
import * as pulumi from "@pulumi/pulumi";
import { parseConfig } from "../../components/config";
import { FlaskApp } from "../../components";
import { HOST_KEY, PROJECT_DIR, rawConfig, tempKeyFile } from "./helpers";

interface Registered { type: string; name: string; deps: string[]; inputs: any; aliases: string[] }

describe("FlaskApp on a fleet (servers + loadBalancer, under mocks)", function () {
  this.timeout(60000);
  const registered = new Map<string, Registered>();
  let fleetApp: FlaskApp, single: FlaskApp, dockerApp: FlaskApp;
  const settle = <T>(o: pulumi.Output<T>) => new Promise<T>((resolve) => o.apply(resolve));
  const srv = (host: string) => ({ host, privateKeyPath: tempKeyFile(), hostKey: HOST_KEY });

  before(async () => {
    const raw = rawConfig({ migrationsDir: "migrations" });
    pulumi.runtime.setAllConfig(raw.values, raw.secretKeys);
    await pulumi.runtime.setMocks({
      newResource: (args) => ({
        id: `${args.name}-id`,
        state: { running: true, ...args.inputs, stderr: "", outputs: {}, repoDigest: `sha256:id-of-${args.name}`,   // outputs: the stack's last (a StackReference: server-order.ts)
          stdout: args.type === "command:local:Command" ? JSON.stringify({ ok: true, hosts: { "10.0.0.1": "abc", "10.0.0.2": "abc" }, history: [] }) : `${args.name} ok\nschema_version=2` },
      }),
      call: (args) => args.inputs,
    }, "flask-deploy", "unit-fleet", false, "organization");   // the organization: the stack reads its last outputs (server-order.ts)
    const monitor: any = (pulumi.runtime as any).getMonitor();
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req: any, cb: any) => {
      registered.set(req.getName(), {
        type: req.getType(), name: req.getName(), inputs: req.getObject()?.toJavaScript(),
        deps: req.getDependenciesList().map((d: string) => d.split("::").pop()!),
        aliases: req.getAliasesList().map((a: any) => a.getSpec()?.getName() ?? a.getUrn()),
      });
      return register(req, cb);
    };
    const fleetCfg = parseConfig(rawConfig({
      server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: srv("10.0.0.9"), appName: "shop",
      migrationsDir: "migrations", secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/shop" },
    }), PROJECT_DIR);
    fleetApp = new FlaskApp("fl", { ...fleetCfg, projectDir: PROJECT_DIR });
    const dbCfg = parseConfig(rawConfig({
      server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: srv("10.0.0.9"), appName: "pgshop",
      migrationsDir: "migrations", secrets: { SECRET_KEY: "s" }, database: { engine: "postgres", host: srv("10.0.0.5") }, databasePassword: "pw-0123456789abcdef",
    }, ["secrets", "databasePassword"]), PROJECT_DIR);
    const dbApp = new FlaskApp("fd", { ...dbCfg, projectDir: PROJECT_DIR });
    const extCfg = parseConfig(rawConfig({
      server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: "external", appName: "extshop",
      migrationsDir: "migrations", secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/extshop" },
    }), PROJECT_DIR);
    const extApp = new FlaskApp("ex", { ...extCfg, projectDir: PROJECT_DIR });
    const pinCfg = parseConfig(rawConfig({
      server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2"), srv("10.0.0.3")], loadBalancer: srv("10.0.0.9"), appName: "pinshop",
      migrationsDir: "migrations", secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/pinshop" }, release: "0123456789ab",
    }), PROJECT_DIR);
    const pinApp = new FlaskApp("pn", { ...pinCfg, projectDir: PROJECT_DIR });
    const dockerCfg = parseConfig(rawConfig({
      server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: srv("10.0.0.9"), appName: "dockshop", runtime: "docker",
      migrationsDir: "migrations", secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/dockshop" },
    }), PROJECT_DIR);
    dockerApp = new FlaskApp("dk", { ...dockerCfg, projectDir: PROJECT_DIR });
    const canaryCfg = parseConfig(rawConfig({
      server: undefined, servers: [srv("10.0.0.1"), srv("10.0.0.2")], loadBalancer: srv("10.0.0.9"), appName: "cyshop", strategy: "canary",
      canary: { steps: [20, 100], stepSeconds: 5 }, migrationsDir: "migrations", secrets: { SECRET_KEY: "s", DATABASE_URL: "postgresql://u:p@db/cyshop" },
    }), PROJECT_DIR);
    const canaryApp = new FlaskApp("cy", { ...canaryCfg, projectDir: PROJECT_DIR });
    single = new FlaskApp("one", { ...parseConfig(rawConfig({ appName: "solo", migrationsDir: "migrations" }), PROJECT_DIR), projectDir: PROJECT_DIR });
    await settle(fleetApp.url);
    await settle(single.url);
    await settle(dbApp.url);
    await settle(extApp.url);
    await settle(pinApp.url);
    await settle(dockerApp.url);
    await settle(canaryApp.url);
    await new Promise((r) => setTimeout(r, 500));
  });

  const names = (prefix: string) => [...registered.keys()].filter((k) => k.startsWith(prefix));
  const deps = (name: string) => {
    const r = registered.get(name);
    assert.ok(r, `no resource ${name}; have ${[...registered.keys()].join(", ")}`);
    return r!.deps;
  };

  it("a pinned release (a rollback): each later host first copies it from the first if it never ran it, before its install", () => {
    assert.deepStrictEqual(names("pn-release-").filter((n) => n.endsWith("-peer")), ["pn-release-h2-peer", "pn-release-h3-peer"]);
    for (const h of ["h2", "h3"]) {
      const peer = registered.get(`pn-release-${h}-peer`)!;
      assert.strictEqual(peer.type, "command:local:Command");
      const p = JSON.parse(peer.inputs.stdin);
      assert.deepStrictEqual([p.RELEASE_ID, p.FROM.address, p.TO.address], ["0123456789ab", "10.0.0.1", `10.0.0.${h.slice(1)}`]);
      assert.match(p.FROM.export, /agent supervise \d+ release-\w+-peer timeouts\.default .* release-export$/);
      assert.match(p.TO.import, /scripts-[0-9a-f]+\/agent release-import$/);
      assert.ok(deps(`pn-release-${h}-install`).includes(`pn-release-${h}-peer`), "installed after the copy");
    }
    assert.deepStrictEqual(names("fl-release").filter((n) => n.endsWith("-peer")), [], "no pin: no copy");
    // their switch may take a release the first host's history vouches for (FLEET_PEER); the first host's may not
    const hosts = JSON.parse(registered.get("pn-fleet-rollout")!.inputs.stdin).HOSTS;
    assert.deepStrictEqual(hosts.map((h: any) => [h.address, JSON.parse(h.params).ROLLBACK, JSON.parse(h.params).FLEET_PEER]),
      [["10.0.0.1", 1, undefined], ["10.0.0.2", 1, 1], ["10.0.0.3", 1, 1]]);
    const unpinned = JSON.parse(registered.get("fl-fleet-rollout")!.inputs.stdin).HOSTS;
    assert.ok(unpinned.every((h: any) => JSON.parse(h.params).FLEET_PEER === undefined && JSON.parse(h.params).ROLLBACK === undefined));
  });

  it("every server gets the app tier; the second's names end in -h2; migrations on the first only", () => {
    for (const [first, second] of [["fl-identity", "fl-identity-h2"], ["fl-release-install", "fl-release-h2-install"], ["fl-env-file", "fl-env-h2-file"],
      ["fl-gunicorn-unit", "fl-gunicorn-h2-unit"], ["fl-preflight-check", "fl-preflight-h2-check"], ["fl-server-state", "fl-server-state-h2"]]) {
      assert.ok(registered.has(first), first);
      assert.ok(registered.has(second), second);
    }
    assert.ok(registered.has("fl-migrations-apply"));
    assert.ok(!names("fl-migrations").some((k) => k.includes("-h2")), "migrations on the first host only");
    assert.ok(!names("fl-").some((k) => k.includes("activation")), "no per-host Activation in a fleet: the FleetSwitch switches");
  });

  it("one fleet switch: after both hosts' staging, the migrations and the balancer; both sites after it", () => {
    const rollout = deps("fl-fleet-rollout");
    for (const d of ["fl-preflight-check", "fl-preflight-h2-check", "fl-migrations-apply", "fl-balancer-configure-10.0.0.9", "fl-env-h2-file"]) {
      assert.ok(rollout.includes(d), `fl-fleet-rollout waits for ${d}: ${rollout.join(", ")}`);
    }
    const nginx = names("fl-nginx").filter((k) => registered.get(k)!.type === "command:remote:Command");
    assert.strictEqual(nginx.length, 2);
    for (const k of nginx) assert.ok(deps(k).includes("fl-fleet-rollout"), `${k} after the fleet switch`);
  });

  it("the rollout's parameters: each host's activate line and its pinned key, the balancer's drain/ready; no secret", () => {
    const r = registered.get("fl-fleet-rollout")!;
    assert.strictEqual(r.type, "command:local:Command");
    assert.match(r.inputs.create, /^python3 -I -B agent fleet-rollout$/);
    const stdin = JSON.parse(r.inputs.stdin);
    assert.deepStrictEqual(stdin.HOSTS.map((h: any) => h.address), ["10.0.0.1", "10.0.0.2"]);
    assert.match(stdin.HOSTS[1].activate, /supervise \d+ activation-h2-switch timeouts\.default .* activate$/);
    assert.strictEqual(stdin.HOSTS[0].ssh.hostKey, HOST_KEY);
    assert.match(stdin.BALANCER["lb-drain"], /lb-drain$/);
    assert.deepStrictEqual([stdin.BATCH_SIZE, stdin.DRAIN_SECONDS], [1, 30]);
    assert.ok(!r.inputs.stdin.includes("postgresql://"), "the app's secrets never reach the rollout");
  });

  it("strategy canary on a fleet: the rollout gets the steps and the balancer's lb-canary; each host switches blue-green, its site unsplit", () => {
    const stdin = JSON.parse(registered.get("cy-fleet-rollout")!.inputs.stdin);
    assert.deepStrictEqual([stdin.CANARY_STEPS, stdin.CANARY_STEP_SECONDS], ["20,100", 5]);
    assert.match(stdin.BALANCER["lb-canary"], /supervise \d+ cy-balancer-canary timeouts\.default .* lb-canary$/);
    for (const h of stdin.HOSTS) {
      assert.match(h.migrations, /agent canary-migrations$/);   // the first host's, asked before the canary
      const p = JSON.parse(h.params);
      assert.deepStrictEqual([p.STRATEGY, p.CANARY_STEPS], ["blue-green", undefined], h.address);
    }
    for (const site of ["cy-nginx-site", "cy-nginx-h2-site"]) assert.doesNotMatch(JSON.parse(registered.get(site)!.inputs.stdin).SITE, /upstream\.conf/, site);
    const plain = JSON.parse(registered.get("fl-fleet-rollout")!.inputs.stdin);
    assert.ok(!("CANARY_STEPS" in plain) && !("lb-canary" in plain.BALANCER) && !("migrations" in plain.HOSTS[0]), "other strategies' rollout as before");
  });

  it("the balancer's configure step lists the hosts; the fleet's outputs name every host", async () => {
    const step = registered.get("fl-balancer-configure-10.0.0.9")!;
    const lb = JSON.parse(step.inputs.stdin);
    assert.strictEqual(lb.HOSTS, "10.0.0.1,10.0.0.2");
    assert.strictEqual(lb.DRAIN_SECONDS, 30, "a host leaving servers is drained for rollout.drainSeconds first");
    // its name carries the balancer's host (another host: a new step there, the old one's delete on the old:
    // the app's part leaves it); a stack deployed before keeps its step (the alias) and its command line
    assert.deepStrictEqual(step.aliases, ["fl-balancer-configure"]);
    assert.match(step.inputs.create, / fl-balancer-configure timeouts\.build .* lb-configure$/);
    assert.match(step.inputs.delete, / fl-balancer-configure timeouts\.default .* lb-delete --app shop$/);
    assert.strictEqual(await settle(fleetApp.server), "root@10.0.0.1:22, root@10.0.0.2:22");
    assert.deepStrictEqual(await settle(fleetApp.hosts!), { "10.0.0.1": "abc", "10.0.0.2": "abc" });
  });

  it("each host's site believes the client's address and scheme from the stack's balancer alone; one server's and an external balancer's as before", () => {
    const site = (name: string) => JSON.parse(registered.get(name)!.inputs.stdin).SITE as string;
    for (const k of ["fl-nginx-site", "fl-nginx-h2-site"]) {
      assert.deepStrictEqual(site(k).match(/set_real_ip_from .*;/g), ["set_real_ip_from 10.0.0.9;"], k);
      assert.match(site(k), /proxy_set_header X-Forwarded-Proto \$fdeploy_shop_proto;/);
    }
    // one server, or loadBalancer external (its addresses are not the stack's to know): the site as before
    for (const k of ["one-nginx-site", "ex-nginx-site", "ex-nginx-h2-site"]) {
      assert.doesNotMatch(site(k), /real_ip|_proto /, k);
      assert.match(site(k), /proxy_set_header X-Forwarded-Proto \$scheme;/, k);
    }
  });

  it("the first host keeps a one-server app's resource names (server -> servers[0] upgrades in place), its Activation aside", () => {
    const steps = (prefix: string) => names(prefix).map((k) => k.slice(prefix.length)).sort();
    const firstHost = steps("fl-").filter((k) => !/-h2(-|$)|^fleet|^balancer/.test(k));
    assert.deepStrictEqual(firstHost, steps("one-").filter((k) => !k.startsWith("activation")));
  });

  it("database.host a server: one role and database for the fleet, reached from every host; both hosts' env waits for it", () => {
    const db = names("fd-database");
    assert.deepStrictEqual(db.filter((k) => k.includes("-h2") && !k.startsWith("fd-database-pin")), [], "no second DatabaseServer or pg-app for the second host");
    // each host pins the server's certificate itself (pg-pin writes the CA file DATABASE_URL names on that host)
    assert.deepStrictEqual(db.filter((k) => k.startsWith("fd-database-pin")).sort(), ["fd-database-pin", "fd-database-pin-h2"]);
    const app = registered.get("fd-database-app")!;
    assert.ok(app, db.join(", "));
    const stdin = JSON.stringify(app.inputs.stdin);
    assert.match(stdin, /ALLOW\\?":\s*\\?"10\.0\.0\.1 10\.0\.0\.2/);
    for (const env of names("fd-env").filter((k) => k.endsWith("-file"))) {
      assert.ok(deps(env).includes("fd-database-app"), `${env} waits for the database`);
      assert.ok(deps(env).includes(env.includes("-h2") ? "fd-database-pin-h2" : "fd-database-pin"), `${env} waits for its host's pinned certificate`);
    }
  });

  it("runtime docker: each host's engine builds the image (its own provider, pinned to its own host key); the switch sends each host its build's id", () => {
    // a provider's configuration arrives as strings (a list: its JSON)
    const opts = (engine: string): string[] => JSON.parse(registered.get(engine)!.inputs.sshOpts);
    const knownHosts = (engine: string) => opts(engine).find((o) => o.startsWith("UserKnownHostsFile="))!.slice("UserKnownHostsFile=".length);
    assert.strictEqual(registered.get("dk-image-engine")!.inputs.host, "ssh://root@10.0.0.1:22");
    assert.strictEqual(registered.get("dk-image-h2-engine")!.inputs.host, "ssh://root@10.0.0.2:22");
    // the first host's file is where a one-server stack has it (its provider unchanged); the second has its own
    assert.match(knownHosts("dk-image-engine"), /\/docker\/known_hosts$/);
    assert.match(knownHosts("dk-image-h2-engine"), /\/docker-h2\/known_hosts$/);
    assert.match(fs.readFileSync(knownHosts("dk-image-engine"), "utf8"), /^10\.0\.0\.1 /);
    assert.match(fs.readFileSync(knownHosts("dk-image-h2-engine"), "utf8"), /^10\.0\.0\.2 /);
    for (const image of ["dk-image", "dk-image-h2"]) {
      assert.match(registered.get(image)!.inputs.imageName, /^fdeploy-dockshop:[0-9a-f]{12}$/);
      assert.ok(deps("dk-fleet-rollout").includes(image), `the rollout waits for ${image}`);
    }
    const hosts = JSON.parse(registered.get("dk-fleet-rollout")!.inputs.stdin).HOSTS;
    assert.deepStrictEqual(hosts.map((h: any) => [h.address, JSON.parse(h.params).RUNTIME, JSON.parse(h.params).IMAGE_ID]),
      [["10.0.0.1", "docker", "sha256:id-of-dk-image"], ["10.0.0.2", "docker", "sha256:id-of-dk-image-h2"]]);
    assert.ok(!names("dk-").some((k) => k.startsWith("dk-preflight")), "no preflight under docker, on any host");
  });

  it("a one-server app: its Activation, no fleet switch, no balancer, no -h2 names, no hosts output", () => {
    assert.ok(registered.has("one-activation-switch"));
    assert.ok(!names("one-").some((k) => /fleet|balancer|-h2/.test(k)));
    assert.strictEqual(single.hosts, undefined);
  });
});
