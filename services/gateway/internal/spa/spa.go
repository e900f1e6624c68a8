// Package spa serves the built single-page app: hashed assets cached for a year, the
// index page revalidated on every load, and index.html for any other path so that deep
// links work. Without a build it serves a short page that says how to make one.
package spa

import (
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
)

// Cache policies.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
)

// notBuilt is served when the web directory holds no index.html.
const notBuilt = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Parley</title></head>
<body>
<h1>Parley</h1>
<p>The web app is not built yet. Run <code>make web</code> (or <code>npm run build</code> in <code>web/</code>) and reload.</p>
<p>The HTTP API under <code>/api/</code> works without it.</p>
</body>
</html>
`

// Handler serves files from dir.
type Handler struct {
	dir string
}

// New returns a handler serving the app built into dir. The directory is opened per
// request, so a build made after start is picked up without a restart.
func New(dir string) *Handler {
	return &Handler{dir: dir}
}

// ServeHTTP implements http.Handler for GET and HEAD.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	root, err := os.OpenRoot(h.dir)
	if err != nil {
		serveNotBuilt(w, r)
		return
	}
	defer root.Close()
	fsys := root.FS()

	name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	if name == "" || name == "index.html" {
		h.serveIndex(w, r, fsys)
		return
	}
	if hidden(name) {
		h.serveIndex(w, r, fsys)
		return
	}
	if serveFile(w, r, fsys, name, cacheFor(name)) {
		return
	}
	if strings.HasPrefix(name, "assets/") {
		// A missing hashed asset must not turn into HTML that a script tag then chokes on.
		w.Header().Set("Cache-Control", cacheRevalidate)
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h.serveIndex(w, r, fsys)
}

func (h *Handler) serveIndex(w http.ResponseWriter, r *http.Request, fsys fs.FS) {
	if !serveFile(w, r, fsys, "index.html", cacheRevalidate) {
		serveNotBuilt(w, r)
	}
}

// serveFile serves one regular file and reports whether it existed.
func serveFile(w http.ResponseWriter, r *http.Request, fsys fs.FS, name, cache string) bool {
	f, err := fsys.Open(name)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil || !info.Mode().IsRegular() {
		return false
	}
	rs, ok := f.(io.ReadSeeker)
	if !ok {
		return false
	}
	w.Header().Set("Cache-Control", cache)
	http.ServeContent(w, r, path.Base(name), info.ModTime(), rs)
	return true
}

func serveNotBuilt(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", cacheRevalidate)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(notBuilt))
}

// cacheFor picks the cache policy of a file: content-hashed assets never change.
func cacheFor(name string) string {
	if strings.HasPrefix(name, "assets/") {
		return cacheImmutable
	}
	return cacheRevalidate
}

// hidden reports whether any path segment is a dotfile, which is never served.
func hidden(name string) bool {
	for seg := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return true
		}
	}
	return false
}

// errNotBuilt is reported by Built when dir holds no index.html.
var errNotBuilt = errors.New("web app not built")

// Built reports whether dir holds a built app (an index.html).
func Built(dir string) error {
	info, err := os.Stat(filepath.Join(dir, "index.html"))
	if err != nil || !info.Mode().IsRegular() {
		return errNotBuilt
	}
	return nil
}
