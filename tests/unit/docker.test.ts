// runtime docker: the config keys (default python: existing stacks unchanged), and what the Docker
// provider is given (the pinned host key, ssh options, the generated Dockerfile).
import * as assert from "assert";
import { parseConfig } from "../../components/config";
import { dockerSshOptions, generatedDockerfile, imageName } from "../../components/docker-image";
import { knownHostsLine } from "../../components/pinned-ssh";
import { errorOf, HOST_KEY, PROJECT_DIR, rawConfig } from "./helpers";

describe("runtime docker", () => {
  it("defaults to python with no docker settings (existing stacks are unchanged)", () => {
    const cfg = parseConfig(rawConfig(), PROJECT_DIR);
    assert.strictEqual(cfg.runtime, "python");
    assert.strictEqual(cfg.docker, undefined);
    // what `pulumi config rm --path docker.baseImage` leaves behind after a switch back counts as unset
    assert.strictEqual(parseConfig(rawConfig({ runtime: "python", docker: {} }), PROJECT_DIR).docker, undefined);
  });

  it("runtime docker fills in the docker defaults; limits are taken", () => {
    let cfg = parseConfig(rawConfig({ runtime: "docker" }), PROJECT_DIR);
    assert.deepStrictEqual(cfg.docker, { baseImage: "python:3.12-slim" });
    cfg = parseConfig(rawConfig({ runtime: "docker", docker: { baseImage: "registry.example.com/py:3.12", memory: "512m", cpus: "1.5" } }), PROJECT_DIR);
    assert.deepStrictEqual(cfg.docker, { baseImage: "registry.example.com/py:3.12", memory: "512m", cpus: 1.5 });
  });

  it("refuses bad values naming the key and the expected form", () => {
    assert.match(errorOf({ runtime: "podman" }), /flask-deploy:runtime: expected one of: python, docker/);
    assert.match(errorOf({ runtime: "docker", docker: { memory: "lots" } }), /flask-deploy:docker\.memory: expected a size like 512m/);
    assert.match(errorOf({ runtime: "docker", docker: { baseImage: "Python 3" } }), /flask-deploy:docker\.baseImage: expected an image reference/);
    assert.match(errorOf({ runtime: "docker", docker: { cpu: "1" } }), /flask-deploy:docker\.cpu: unknown setting .*known: baseImage, memory, cpus/);
    assert.match(errorOf({ docker: { memory: "512m" } }), /flask-deploy:docker: set, but runtime is python/);

    assert.match(errorOf({ runtime: "docker", sharedFiles: ["notes/x.cfg"] }), /flask-deploy:sharedFiles: not supported with runtime docker/);
    assert.match(errorOf({ runtime: "docker", strategy: "canary" }), /flask-deploy:strategy: canary is not supported with runtime docker yet/);
    assert.match(errorOf({ runtime: "docker", jobs: { j: { schedule: "hourly", command: "true" } } }), /flask-deploy:jobs: not supported with runtime docker yet/);
  });

  it("pins the host key for the provider's ssh, with the key file and no prompts", () => {
    const server = { host: "10.213.0.5", port: 22, user: "root", hostKey: `${HOST_KEY} root@x`, privateKeyPath: "/k/id" };
    assert.strictEqual(knownHostsLine(server), `10.213.0.5 ${HOST_KEY}\n`);
    assert.strictEqual(knownHostsLine({ ...server, port: 2222 }), `[10.213.0.5]:2222 ${HOST_KEY}\n`);
    const opts = dockerSshOptions(server, "/p/known_hosts");
    for (const o of ["UserKnownHostsFile=/p/known_hosts", "StrictHostKeyChecking=yes", "BatchMode=yes", `HostKeyAlgorithms=${HOST_KEY.split(" ")[0]}`]) {
      assert.ok(opts.includes(o), `${o} in ${opts.join(" ")}`);
    }
    assert.deepStrictEqual(opts.slice(-2), ["-i", "/k/id"]);
    assert.ok(!dockerSshOptions({ ...server, privateKeyPath: undefined }, "/p/kh").includes("-i"), "with an agent: no key file");
  });

  it("generates a Dockerfile with the requirements in a cached layer before the code", () => {
    const d = generatedDockerfile("python:3.12-slim");
    assert.match(d, /^FROM python:3\.12-slim$/m);
    assert.ok(d.indexOf("requirements.txt") < d.indexOf("COPY . /app"), d);
    assert.doesNotMatch(d, /SECRET|\.env/);
    assert.strictEqual(imageName("flaskapp", "0123456789ab"), "fdeploy-flaskapp:0123456789ab");
  });
});
