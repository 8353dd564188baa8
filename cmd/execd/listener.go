package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"time"

	"connectrpc.com/vanguard"
	"connectrpc.com/vanguard/vanguardgrpc"
	"google.golang.org/grpc"

	"github.com/tauro-exec/tauro-exec/internal/service"
)

// One listener serves three protocols of the same contract: gRPC (HTTP/2,
// over TLS or cleartext h2c) for the CLI, Go and Python; gRPC-Web and
// Connect (HTTP/1.1 or HTTP/2) for browsers and Node. A transcoder turns
// gRPC-Web and Connect calls into gRPC calls to the one grpc.Server, so
// every call, whatever its protocol, passes the same interceptors: auth,
// validation, logging, audit and redaction.

// rpcRouter returns the listener's router: the path of every service that
// srv serves (/tauro.exec.v1.ExecService/, health, reflection) goes to the
// transcoder, behind the CORS policy. Other paths are free for other
// handlers (mux.Handle); a path nothing handles is 404.
func rpcRouter(srv *grpc.Server, cors corsPolicy) (*http.ServeMux, error) {
	tc, err := vanguardgrpc.NewTranscoder(srv, vanguard.WithDefaultServiceOptions(
		// A Connect or gRPC-Web message is buffered whole to be re-framed:
		// bound it by the largest message execd sends, not vanguard's 4 GiB.
		vanguard.WithMaxMessageBufferBytes(service.MaxSendMsgSize),
		// grpc.Server registers no decompressor: the transcoder inflates
		// a compressed Connect or gRPC-Web request itself.
		vanguard.WithNoTargetCompression(),
	))
	if err != nil {
		return nil, fmt.Errorf("serving gRPC-Web and Connect: %w", err)
	}
	rpc := cors.wrap(connectUnaryByDefault(tc))
	mux := http.NewServeMux()
	for name := range srv.GetServiceInfo() {
		mux.Handle("/"+name+"/", rpc)
	}
	return mux, nil
}

// connectUnaryByDefault marks a POST of JSON or binary protobuf to an RPC
// path as a Connect unary call when the client did not say so with
// Connect-Protocol-Version: the transcoder would otherwise take it for a
// REST call, of which execd has none, and answer 404. A plain
// `curl -H 'Content-Type: application/json' -d '{}' .../ListPipelines`
// then works, as the Connect protocol allows.
func connectUnaryByDefault(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.Header.Get("Connect-Protocol-Version") == "" {
			if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err == nil && (mt == "application/json" || mt == "application/proto") {
				r.Header.Set("Connect-Protocol-Version", "1")
			}
		}
		next.ServeHTTP(w, r)
	})
}

// httpServer serves h on every protocol the listener speaks: with tlsCfg,
// HTTP/2 and HTTP/1.1 negotiated by ALPN; without, HTTP/1.1 and HTTP/2
// with prior knowledge (h2c), which is how gRPC clients speak cleartext.
func httpServer(h http.Handler, tlsCfg *tls.Config, log *slog.Logger) *http.Server {
	var p http.Protocols
	p.SetHTTP1(true)
	if tlsCfg != nil {
		p.SetHTTP2(true)
	} else {
		p.SetUnencryptedHTTP2(true)
	}
	return &http.Server{
		Handler:   h,
		TLSConfig: tlsCfg,
		Protocols: &p,
		// No read or write timeout: WatchRun streams last as long as a run.
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    1 << 20,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

// serveHTTP serves hs on lis until it is shut down; http.ErrServerClosed,
// the normal end, is nil.
func serveHTTP(hs *http.Server, lis net.Listener) error {
	var err error
	if hs.TLSConfig != nil {
		// The certificate is in TLSConfig; ServeTLS adds h2 and http/1.1 to ALPN.
		err = hs.ServeTLS(lis, "", "")
	} else {
		err = hs.Serve(lis)
	}
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// drain stops the listener and waits for the calls under way, streams
// included, to end; when ctx ends first it cuts the connections that are
// left. grpc.Server.GracefulStop does not apply: the gRPC server has no
// listener of its own, it only serves the requests the router hands it.
func drain(ctx context.Context, hs *http.Server, srv *grpc.Server) error {
	err := hs.Shutdown(ctx)
	if err != nil {
		_ = hs.Close()
	}
	srv.Stop()
	return err
}
