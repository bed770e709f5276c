// The rendered nginx site: proxies to the live-slot socket, serves static files from the live
// release, and carries the configured limits.
import * as assert from "assert";
import { renderSite } from "../../components/nginx-site";

describe("nginx site", () => {
  const site = renderSite({ appName: "my-app", appRoot: "/srv/my-app", serverName: "example.com www.example.com", clientMaxBodySize: "20m", proxyTimeoutSeconds: 45 });

  it("proxies to the live slot's socket through a named upstream", () => {
    assert.match(site, /upstream fdeploy_my_app \{\s+server unix:\/run\/fdeploy-my-app\/live\.sock;/);
    assert.match(site, /proxy_pass http:\/\/fdeploy_my_app;/);
  });
  it("strategy canary: the upstream's servers from activate.sh's file, and a log of each proxied request's slot", () => {
    const settings = { appName: "flaskapp", appRoot: "/srv/flaskapp", serverName: "_", clientMaxBodySize: "10m", proxyTimeoutSeconds: 60 };
    const site = renderSite({ ...settings, canary: true });
    assert.match(site, /upstream fdeploy_flaskapp \{\n\s+include \/etc\/fdeploy\/flaskapp\/upstream\.conf;\n\}/);
    assert.doesNotMatch(site, /server unix:/);
    assert.match(site, /log_format fdeploy_flaskapp_upstream '\$msec\\t\$status\\t\$upstream_addr\\t\$upstream_status\\t\$upstream_response_time\\t\$request_time';/);
    assert.match(site, /access_log \/var\/log\/nginx\/fdeploy-flaskapp\.upstream\.log fdeploy_flaskapp_upstream;/);
    // other strategies: the site as it always was
    assert.doesNotMatch(renderSite(settings), /upstream\.conf|upstream\.log|log_format/);
  });

  it("serves static files from the live release", () => {
    assert.match(site, /location \/static\/ \{\s+alias \/srv\/my-app\/current\/static\/;/);
  });
  it("uses the server names, body size and timeouts", () => {
    assert.match(site, /server_name example\.com www\.example\.com;/);
    assert.match(site, /client_max_body_size 20m;/);
    assert.match(site, /proxy_read_timeout 45s;/);
    assert.doesNotMatch(site, /default_server/);
  });
  it("hides nginx's version and refuses dotfiles (but not .well-known)", () => {
    assert.match(site, /server_tokens off;/);
    const re = /location ~ (\S+) \{\s+return 404;/.exec(site);
    assert.ok(re, "a dotfile location");
    const nginxRegex = new RegExp(re![1]);
    for (const p of ["/static/.secret", "/.git/config", "/.env"]) assert.ok(nginxRegex.test(p), p);
    for (const p of ["/.well-known/acme-challenge/x", "/static/style.css"]) assert.ok(!nginxRegex.test(p), p);
  });
  it("includes the app's maintenance mode file before any location (absent: matches nothing)", () => {
    const at = site.indexOf("include /etc/fdeploy/my-app/maintenance.con[f];");
    assert.ok(at > 0 && at < site.indexOf("location"), "the include, before the locations");
  });
  it("is the default server when server_name is _", () => {
    const any = renderSite({ appName: "a1", appRoot: "/srv/a1", serverName: "_", clientMaxBodySize: "1m", proxyTimeoutSeconds: 5 });
    assert.match(any, /listen 80 default_server;/);
  });
});
