// The nginx server block for an app, as a pure function of validated settings (unit-tested in
// tests/unit/nginx-site.test.ts). It proxies to /run/fdeploy-<app>/live.sock, a symlink that
// the agent's switch (activate: switch.py) points at the live slot's socket, so switching slots never touches nginx.
// With TLS (components/tls.ts): port 80 answers ACME HTTP-01 challenges from the app's webroot and
// redirects everything else to HTTPS; port 443 serves the app with the certificate certbot keeps in
// /etc/letsencrypt/live/<certName>/. Without TLS the output is exactly what it always was.
export interface SiteTls {
  /** certbot's certificate name (its lineage in /etc/letsencrypt/live/). */
  certName: string;
  /** Where certbot's webroot plugin writes .well-known/acme-challenge/ files. */
  webroot: string;
  /** Where fullchain.pem and privkey.pem are: certbot's live/<certName>/ (default), or a given folder (tls.mode custom). */
  certDir?: string;
  /** Strict-Transport-Security max-age; 0 sends no HSTS header. */
  hstsMaxAgeSeconds: number;
  /**
   * The site while the first certificate is requested: plain HTTP as before, plus the challenge
   * location (no certificate exists yet to serve HTTPS with).
   */
  issuing?: boolean;
}

export interface SiteSettings {
  appName: string;
  appRoot: string;
  /** '_' (any host: default server) or space-separated names. */
  serverName: string;
  clientMaxBodySize: string;
  proxyTimeoutSeconds: number;
  /** URL prefix -> folder in the app that nginx serves itself (default: /static/ -> static). */
  static?: Record<string, string>;
  tls?: SiteTls;
  /**
   * strategy canary: the upstream's servers come from a root-only file that the switch (canary_flow.py) rewrites
   * per step (the live slot alone, or the live and the new slot with weights), and every proxied
   * request is logged with the slot that answered, its status and time (the canary's gates read
   * that log). Other strategies: exactly the site as before.
   */
  canary?: boolean;
  /**
   * A host of a fleet behind the balancer the stack manages: its address (loadBalancer.host). From that peer
   * alone nginx believes the client's address (realip: the last X-Forwarded-For entry, the one HAProxy adds)
   * and scheme (X-Forwarded-Proto, which HAProxy always sets); a client talking to the host directly gets
   * its own connection's. Unset: exactly the site as before.
   */
  balancer?: string;
}

/** The upstream servers file of strategy canary (the agent's site.upstream_conf) and its request log (canary.upstream_log). */
export function upstreamConf(appName: string): string {
  return `/etc/fdeploy/${appName}/upstream.conf`;
}
export function upstreamLog(appName: string): string {
  return `/var/log/nginx/fdeploy-${appName}.upstream.log`;
}

export function upstreamName(appName: string): string {
  return `fdeploy_${appName.replace(/-/g, "_")}`;
}

/** The variable a site behind the balancer passes as X-Forwarded-Proto. */
function protoVar(appName: string): string {
  return `$${upstreamName(appName)}_proto`;
}

/** Behind the balancer: the scheme the app is told. realip replaced the peer's address only when the peer is the
 * balancer (set_real_ip_from), so an unchanged address is a direct client, whose own scheme counts. */
function balancerHead(s: SiteSettings): string {
  if (s.balancer === undefined) return "";
  if (!/^[A-Za-z0-9.:-]+$/.test(s.balancer)) throw new Error(`loadBalancer.host: expected a host name or IPv4 address for the site, got ${JSON.stringify(s.balancer)}`);
  return `
# behind the stack's balancer (${s.balancer}): its X-Forwarded-Proto (http or https) counts, nobody else's
map "$realip_remote_addr $remote_addr $http_x_forwarded_proto" ${protoVar(s.appName)} {
    default $scheme;
    "~^(\\S+) \\1 " $scheme;
    "~ https$" https;
    "~ http$" http;
}`;
}

function realIp(s: SiteSettings): string {
  return s.balancer === undefined ? "" : `
    set_real_ip_from ${s.balancer};
    real_ip_header X-Forwarded-For;`;
}

/** certbot's lineage name for an app's certificate. */
export function certName(appName: string): string {
  return `fdeploy-${appName}`;
}

/** Where a certificate of your own (tls.mode custom) is kept: root-only, beside the environment file. */
export function customCertDir(appName: string): string {
  return `/etc/fdeploy/${appName}/tls`;
}

/** The webroot certbot writes challenge files to (root-owned, read by nginx). */
export function acmeWebroot(appName: string): string {
  return `/var/lib/fdeploy-acme/${appName}`;
}

// Mozilla's "intermediate" TLS configuration (TLS 1.2 and 1.3, forward-secret AEAD ciphers).
const TLS_CIPHERS = [
  "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384",
  "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
  "DHE-RSA-AES128-GCM-SHA256", "DHE-RSA-AES256-GCM-SHA384", "DHE-RSA-CHACHA20-POLY1305",
].join(":");

function common(s: SiteSettings): string {
  return `    server_tokens off;
    client_max_body_size ${s.clientMaxBodySize};
    access_log /var/log/nginx/fdeploy-${s.appName}.access.log;${s.canary ? `
    access_log ${upstreamLog(s.appName)} ${upstreamName(s.appName)}_upstream;` : ""}
    error_log /var/log/nginx/fdeploy-${s.appName}.error.log;${realIp(s)}`;
}

function appLocations(s: SiteSettings): string {
  return `    # \`fdeploy maintenance on\` (ops.sh): a root-only file that answers 503 with a page while it
    # exists; absent, this matches nothing. A deploy rewrites the site, never this file.
    include /etc/fdeploy/${s.appName}/maintenance.con[f];

    # no dotfiles (.git, .env.example, …) from the release or the app; ACME's .well-known stays
    location ~ /\\.(?!well-known/) {
        return 404;
    }

${staticLocations(s)}
    location / {
        proxy_pass http://${upstreamName(s.appName)};
        proxy_set_header Host $host;
        proxy_set_header X-Real-IP $remote_addr;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto ${s.balancer === undefined ? "$scheme" : protoVar(s.appName)};
        proxy_connect_timeout 5s;
        proxy_send_timeout ${s.proxyTimeoutSeconds}s;
        proxy_read_timeout ${s.proxyTimeoutSeconds}s;
        proxy_next_upstream error timeout;
    }`;
}

function challengeLocation(t: SiteTls): string {
  return `    # ACME HTTP-01 challenges (certbot --webroot): issuance and renewal never stop nginx
    location ^~ /.well-known/acme-challenge/ {
        root ${t.webroot};
        default_type text/plain;
        try_files $uri =404;
    }`;
}

export function renderSite(s: SiteSettings): string {
  const any = s.serverName === "_";
  const head = `# Managed by flask-deploy (components/nginx-site.ts). Do not edit: the next deploy rewrites it.
${s.canary ? canaryHead(s.appName) : `upstream ${upstreamName(s.appName)} {
    server unix:/run/fdeploy-${s.appName}/live.sock;
}`}${balancerHead(s)}
`;
  const t = s.tls;
  if (!t) {
    return `${head}
server {
    listen 80${any ? " default_server" : ""};
    server_name ${s.serverName};

${common(s)}

${appLocations(s)}
}
`;
  }
  if (t.issuing) {
    return `${head}
# HTTP only until the first certificate is issued (the agent's tls-create)
server {
    listen 80;
    server_name ${s.serverName};

${common(s)}

${challengeLocation(t)}

${appLocations(s)}
}
`;
  }
  const live = t.certDir ?? `/etc/letsencrypt/live/${t.certName}`;
  const hsts = t.hstsMaxAgeSeconds > 0
    ? `\n    add_header Strict-Transport-Security "max-age=${t.hstsMaxAgeSeconds}" always;`
    : "";
  return `${head}
server {
    listen 80;
    server_name ${s.serverName};

${common(s)}

${challengeLocation(t)}

    location / {
        return 301 https://$host$request_uri;
    }
}

server {
    listen 443 ssl http2;
    server_name ${s.serverName};

    ssl_certificate ${live}/fullchain.pem;
    ssl_certificate_key ${live}/privkey.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers ${TLS_CIPHERS};
    ssl_prefer_server_ciphers off;
    ssl_session_timeout 1d;
    ssl_session_cache shared:${upstreamName(s.appName)}_tls:10m;
    ssl_session_tickets off;${hsts}

${common(s)}

${appLocations(s)}
}
`;
}

function canaryHead(app: string): string {
  return `# strategy canary: activate.sh writes the servers (the live slot, or the live and the new slot
# with weights) and reloads nginx per step; the upstream log gives its gates each slot's numbers
upstream ${upstreamName(app)} {
    include ${upstreamConf(app)};
}
log_format ${upstreamName(app)}_upstream '$msec\\t$status\\t$upstream_addr\\t$upstream_status\\t$upstream_response_time\\t$request_time';`;
}

/** Static files straight from the live release, without a trip through Gunicorn (plain prefix
 * locations, so the dotfile rule above still applies; `expires` sets Cache-Control: max-age). */
function staticLocations(s: SiteSettings): string {
  return Object.entries(s.static ?? { "/static/": "static" }).sort(([a], [b]) => a.localeCompare(b)).map(([prefix, folder]) => {
    if (!/^\/([A-Za-z0-9._~-]+\/)*$/.test(prefix) || !/^[A-Za-z0-9_-][A-Za-z0-9._\/-]*$/.test(folder) || folder.split("/").includes("..")) {
      throw new Error(`unsafe static mapping ${prefix} -> ${folder}`);
    }
    return `    # static files straight from the live release, without a trip through Gunicorn
    location ${prefix} {
        alias ${s.appRoot}/current/${folder.replace(/\/+$/, "")}/;
        expires 1h;
        access_log off;
    }
`;
  }).join("\n");
}
