// The nginx server block for an app, as a pure function of validated settings (unit-tested in
// tests/unit/nginx-site.test.ts). It proxies to /run/fdeploy-<app>/live.sock, a symlink that
// activate.sh points at the live slot's socket, so switching slots never touches nginx.
export interface SiteSettings {
  appName: string;
  appRoot: string;
  /** '_' (any host: default server) or space-separated names. */
  serverName: string;
  clientMaxBodySize: string;
  proxyTimeoutSeconds: number;
  /** URL prefix -> folder in the app that nginx serves itself (default: /static/ -> static). */
  static?: Record<string, string>;
}

export function upstreamName(appName: string): string {
  return `fdeploy_${appName.replace(/-/g, "_")}`;
}

export function renderSite(s: SiteSettings): string {
  const any = s.serverName === "_";
  return `# Managed by flask-deploy (components/nginx-site.ts). Do not edit: the next deploy rewrites it.
upstream ${upstreamName(s.appName)} {
    server unix:/run/fdeploy-${s.appName}/live.sock;
}

server {
    listen 80${any ? " default_server" : ""};
    server_name ${s.serverName};

    server_tokens off;
    client_max_body_size ${s.clientMaxBodySize};
    access_log /var/log/nginx/fdeploy-${s.appName}.access.log;
    error_log /var/log/nginx/fdeploy-${s.appName}.error.log;

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
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_connect_timeout 5s;
        proxy_send_timeout ${s.proxyTimeoutSeconds}s;
        proxy_read_timeout ${s.proxyTimeoutSeconds}s;
        proxy_next_upstream error timeout;
    }
}
`;
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
