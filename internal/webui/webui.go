// Package webui serves execd's web view: a single-page app that reads runs
// through the API on the same listener (Connect and gRPC-Web), so it needs
// no CORS. `make web` builds the app (app/, TypeScript and Vite) into
// dist/app, which is embedded here; a binary built without it serves a page
// that says how to build it.
package webui

import (
	"bytes"
	"compress/gzip"
	"embed"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"
)

//go:embed all:dist
var dist embed.FS

// bundleDir is where `make web` writes the app inside dist.
const bundleDir = "dist/app"

// Handler serves the web view. Paths the app routes itself (/, /runs/...)
// get its index.html; /assets/... are the bundle's files, named by their
// content, so they may be cached for good, and sent gzipped to a browser
// that takes it (the script shrinks to about a quarter).
func Handler() http.Handler {
	bundle, err := fs.Sub(dist, bundleDir)
	if err == nil {
		if _, err = fs.Stat(bundle, "index.html"); err != nil {
			bundle = nil
		}
	}
	return handler(bundle)
}

// handler serves bundle, or the "not built" page when bundle is nil.
func handler(bundle fs.FS) http.Handler {
	var files http.Handler
	var index []byte
	var gzipped map[string][]byte
	if bundle != nil {
		files = http.FileServerFS(bundle)
		index, _ = fs.ReadFile(bundle, "index.html")
		gzipped = gzipAssets(bundle)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := path.Clean("/" + r.URL.Path)
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// A call to a path no service serves is not found, whatever
			// its method; only the web view's own pages are read-only.
			if !appRoute(p) {
				http.NotFound(w, r)
				return
			}
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "the web view is read with GET", http.StatusMethodNotAllowed)
			return
		}
		secureHeaders(w.Header())
		switch {
		case appRoute(p):
			if index == nil {
				notBuilt(w)
				return
			}
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.Header().Set("Cache-Control", "no-cache")
			_, _ = w.Write(index)
		case strings.HasPrefix(p, "/assets/") && files != nil:
			w.Header().Set("Cache-Control", "public, max-age=31536000, immutable")
			w.Header().Set("Vary", "Accept-Encoding")
			if gz, ok := gzipped[p]; ok && acceptsGzip(r) {
				w.Header().Set("Content-Encoding", "gzip")
				w.Header().Set("Content-Type", mime.TypeByExtension(path.Ext(p)))
				http.ServeContent(w, r, p, time.Time{}, bytes.NewReader(gz))
				return
			}
			files.ServeHTTP(w, r)
		case p == "/favicon.svg" && files != nil:
			files.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

// gzipAssets compresses the bundle's scripts and stylesheets once, keyed by
// their URL path.
func gzipAssets(bundle fs.FS) map[string][]byte {
	out := map[string][]byte{}
	entries, _ := fs.ReadDir(bundle, "assets")
	for _, e := range entries {
		if ext := path.Ext(e.Name()); e.IsDir() || (ext != ".js" && ext != ".css") {
			continue
		}
		b, err := fs.ReadFile(bundle, "assets/"+e.Name())
		if err != nil {
			continue
		}
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(b)
		if zw.Close() == nil {
			out["/assets/"+e.Name()] = buf.Bytes()
		}
	}
	return out
}

// acceptsGzip reports a request whose Accept-Encoding takes gzip.
func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

// appRoute reports a path the app's own router shows: the runs list and a
// run's page.
func appRoute(p string) bool {
	return p == "/" || p == "/index.html" || p == "/runs" || strings.HasPrefix(p, "/runs/")
}

// secureHeaders keeps the page to its own origin: no inline script, no
// framing, no other site's resources.
func secureHeaders(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

func notBuilt(w http.ResponseWriter) {
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusServiceUnavailable)
	_, _ = w.Write([]byte(notBuiltPage))
}

const notBuiltPage = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>tauro-exec: web view not built</title></head>
<body style="font-family: system-ui, sans-serif; max-width: 40rem; margin: 4rem auto; line-height: 1.5">
<h1>Web view not built: run <code>make web</code></h1>
<p>This execd was built without its web view. Run <code>make web</code> (or <code>make build</code>, which runs it)
in the repository and start the new <code>bin/execd</code>. The API on this address works without it.</p>
</body></html>
`
