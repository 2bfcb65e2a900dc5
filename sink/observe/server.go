package observe

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Server serves /metrics, /healthz and /readyz, all read-only, and with
// pprof Go's /debug/pprof/ profiles, from its own goroutine until Close.
type Server struct {
	ln   net.Listener
	stop context.CancelFunc
	done chan struct{}
	once sync.Once
}

// Serve listens on addr ([host]:port; port 0 picks one, see Addr) and
// serves m's registry and h's readiness until Close. An error of the
// server after start-up is logged.
func Serve(addr string, m *Metrics, h *Health, pprof bool, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{ln: ln, stop: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		if err := serve(ctx, ln, handler(m, h, pprof)); err != nil {
			log.Error("http server", "err", err)
		}
	}()
	return s, nil
}

// Addr is the listener's address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, waiting up to 2 s for requests in flight, and
// returns once its goroutine has ended. It may be called more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.stop()
		<-s.done
	})
}

func handler(m *Metrics, h *Health, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(rw, "ok")
	})
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, _ *http.Request) {
		if err := h.Ready(); err != nil {
			rw.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(rw, err)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// serve serves hd on ln until ctx ends.
func serve(ctx context.Context, ln net.Listener, hd http.Handler) error {
	srv := &http.Server{Handler: hd, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
