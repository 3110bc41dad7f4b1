package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/budgetledger/budgetledger/ledger"
	"github.com/budgetledger/budgetledger/ledger/opendata"
	"github.com/budgetledger/budgetledger/server"
	"github.com/budgetledger/budgetledger/server/web"
)

// This file serves --http-listen (docs/http.md): the public transparency page at "/", the SCDL
// open data at /opendata/subventions.csv, and the read RPCs as JSON (REST under /v1/, and the
// Connect protocol at /budgetledger.v1.<Service>/<Method>), over TLS with the gRPC listener's
// certificate when it has one.

// httpHandler is everything --http-listen serves. The JSON API goes through the gRPC server
// (its interceptors: authentication, roles, validation). The page and the open data read the
// ledger directly: with authentication on they are public only with --public-page, otherwise
// they need a credential of the tokens file, as a metrics scrape does.
func httpHandler(l *ledger.Ledger, srv *server.Server, auth *server.Authenticator, publicPage bool, log *slog.Logger) (http.Handler, error) {
	api, err := srv.HTTPHandler()
	if err != nil {
		return nil, err
	}
	var public http.Handler
	{
		mux := http.NewServeMux()
		mux.Handle("/opendata/subventions.csv", opendata.Handler(l)) // every method: the handler answers 405 to all but GET and HEAD
		mux.Handle("/", web.Handler(l, log))
		public = refusalsLogged(mux, log)
	}
	if auth != nil && !publicPage {
		public = requireCredential(auth, public, log, "page request", "transparency page")
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/v1/") || strings.HasPrefix(r.URL.Path, "/budgetledger.v1.") {
			api.ServeHTTP(w, r)
			return
		}
		public.ServeHTTP(w, r)
	}), nil
}

// serveHTTP serves h on lis (over TLS with tlsConfig) until the returned function is called, and
// logs "<name> listening" with the address of path and attrs. The gRPC listener's neighbours
// (--http-listen, --metrics-listen) both start this way.
func serveHTTP(name string, lis net.Listener, h http.Handler, tlsConfig *tls.Config, log *slog.Logger, path string, attrs ...any) (stop func()) {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute, IdleTimeout: 2 * time.Minute}
	scheme := "http"
	if tlsConfig != nil {
		scheme = "https"
		lis = tls.NewListener(lis, tlsConfig)
	}
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(name+" server stopped", "error", err)
		}
	}()
	log.Info(name+" listening", append([]any{"address", scheme + "://" + lis.Addr().String() + path}, attrs...)...)
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}
}

// truncate cuts s to n bytes, for logging what a caller sent.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// refusalsLogged logs every answer of h of 400 or more as "http request refused", with the path
// and the status, as the JSON API's refusals are: the page's and the open data's refusals (a bad
// date, an unknown envelope, a method other than GET) leave a line too.
func refusalsLogged(h http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status >= http.StatusBadRequest {
			log.InfoContext(r.Context(), "http request refused", "path", truncate(r.URL.Path, 200),
				"query", truncate(r.URL.RawQuery, 200), "http.status", rec.status)
		}
	})
}

// statusRecorder is a ResponseWriter that keeps the status it answered.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
