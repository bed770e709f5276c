// The nginx server block for an app, as a pure function of validated settings (unit-tested in
// tests/unit/nginx-site.test.ts). The upstream it proxies to is a file activate.sh owns, so the
// switch between slots never rewrites this file.
export interface SiteSettings {
  appName: string;
  appRoot: string;
  /** '_' (any host: default server) or space-separated names. */
  serverName: string;
  clientMaxBodySize: string;
  proxyTimeoutSeconds: number;
}

export function upstreamName(appName: string): string {
  return `fdeploy_${appName.replace(/-/g, "_")}`;
}

export function renderSite(s: SiteSettings): string {
  const any = s.serverName === "_";
  return `# Managed by flask-deploy (components/nginx-site.ts). Do not edit: the next deploy rewrites it.
include /etc/nginx/fdeploy/${s.appName}.upstream.conf;

server {
    listen 80${any ? " default_server" : ""};
    server_name ${s.serverName};

    client_max_body_size ${s.clientMaxBodySize};
    access_log /var/log/nginx/fdeploy-${s.appName}.access.log;
    error_log /var/log/nginx/fdeploy-${s.appName}.error.log;

    # static files straight from the live release, without a trip through Gunicorn
    location /static/ {
        alias ${s.appRoot}/current/static/;
        expires 1h;
        access_log off;
    }

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
