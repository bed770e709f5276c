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

  describe("a host behind the stack's balancer", () => {
    const plain = { appName: "shop", appRoot: "/srv/shop", serverName: "_", clientMaxBodySize: "10m", proxyTimeoutSeconds: 60 };
    const behind = renderSite({ ...plain, balancer: "10.0.0.10" });

    it("takes the client's address from X-Forwarded-For only when the balancer's address is the peer", () => {
      assert.deepStrictEqual(behind.match(/set_real_ip_from .*;/g), ["set_real_ip_from 10.0.0.10;"]);
      assert.match(behind, /\n    real_ip_header X-Forwarded-For;\n/);
      assert.doesNotMatch(behind, /real_ip_recursive/);   // the last entry: the one HAProxy adds, never a client's
    });
    it("passes the balancer's X-Forwarded-Proto (http or https), a direct client's own scheme", () => {
      assert.match(behind, /proxy_set_header X-Forwarded-Proto \$fdeploy_shop_proto;/);
      const map = /map "\$realip_remote_addr \$remote_addr \$http_x_forwarded_proto" \$fdeploy_shop_proto \{\n([^}]*)\}/.exec(behind);
      assert.ok(map, behind);
      // nginx's map: regexes in their order, first match wins, else the default
      const entries = [...map![1].matchAll(/^\s+"~([^"]*)" (\S+);$/gm)].map(([, re, v]) => [new RegExp(re), v] as const);
      assert.match(map![1], /default \$scheme;/);
      const proto = (peer: string, realip: string, header: string) =>
        entries.find(([re]) => re.test(`${peer} ${realip} ${header}`))?.[1] ?? "$scheme";
      assert.strictEqual(proto("10.0.0.10", "198.51.100.7", "https"), "https", "through the balancer over HTTPS");
      assert.strictEqual(proto("10.0.0.10", "198.51.100.7", "http"), "http");
      assert.strictEqual(proto("10.0.0.10", "198.51.100.7", "gopher"), "$scheme");
      // realip leaves a direct client's address as it is: its forged header counts for nothing
      assert.strictEqual(proto("198.51.100.7", "198.51.100.7", "https"), "$scheme", "a direct client claims https");
      assert.strictEqual(proto("10.0.0.10", "10.0.0.10", "https"), "$scheme", "the balancer's own probe");
    });
    it("every other site: not a byte of it", () => {
      for (const s of [renderSite(plain), site, renderSite({ ...plain, canary: true })]) {
        assert.doesNotMatch(s, /real_ip|_proto|map /);
        assert.match(s, /proxy_set_header X-Forwarded-Proto \$scheme;/);
      }
      assert.strictEqual(behind.replace(/\n# behind the stack's balancer[^]*?\n\}/, "").replace(/\n    set_real_ip_from.*\n    real_ip_header.*/, "")
        .replace("$fdeploy_shop_proto", "$scheme"), renderSite(plain));
    });
    it("refuses an address that is not one", () => {
      assert.throws(() => renderSite({ ...plain, balancer: "10.0.0.10; include /tmp/x" }), /loadBalancer.host: expected a host name or IPv4 address/);
    });
  });
});
