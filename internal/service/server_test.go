package service

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	execv1 "github.com/tauro-exec/tauro-exec/gen/tauro/exec/v1"
)

// serve starts the real server stack on a loopback listener. The service
// has no engine, so any call that reaches a handler panics: that is how
// these tests reach the recovery interceptor.
func serve(t *testing.T) *grpc.ClientConn {
	t.Helper()
	hs := health.NewServer()
	srv, err := NewServer(New(nil), hs, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestServer_APanicInAHandlerIsInternalAndTheServerStaysUp(t *testing.T) {
	cl := execv1.NewExecServiceClient(serve(t))
	for i := 0; i < 2; i++ {
		_, err := cl.GetRun(ctx(t), &execv1.GetRunRequest{RunId: "run-x"})
		if status.Code(err) != codes.Internal {
			t.Fatalf("call %d: %v, want INTERNAL", i, err)
		}
	}
}

func TestServer_RequestsBreakingProtoConstraintsNeverReachTheHandler(t *testing.T) {
	cl := execv1.NewExecServiceClient(serve(t))
	cases := []struct {
		name  string
		call  func() error
		field string
	}{
		{"empty run id", func() error { _, err := cl.GetRun(ctx(t), &execv1.GetRunRequest{}); return err }, "run_id"},
		{"negative page size", func() error {
			_, err := cl.ListRuns(ctx(t), &execv1.ListRunsRequest{PageSize: -1})
			return err
		}, "page_size"},
		{"too many workers", func() error {
			_, err := cl.ExecutePipeline(ctx(t), &execv1.ExecutePipelineRequest{Pipeline: "p", MaxWorkers: 100000})
			return err
		}, "max_workers"},
		{"negative after_sequence on a stream", func() error {
			s, err := cl.WatchRun(ctx(t), &execv1.WatchRunRequest{RunId: "r", AfterSequence: -1})
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		}, "after_sequence"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			st, _ := status.FromError(err)
			if st.Code() != codes.InvalidArgument {
				t.Fatalf("%v, want INVALID_ARGUMENT", err)
			}
			var fields []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						fields = append(fields, v.GetField())
					}
				}
			}
			if len(fields) != 1 || fields[0] != tc.field {
				t.Errorf("violations on %v, want %s", fields, tc.field)
			}
		})
	}
}

func TestServer_OversizedRequestsAreRefused(t *testing.T) {
	cl := execv1.NewExecServiceClient(serve(t))
	big := make([]string, 0, 1000)
	for i := 0; i < 1000; i++ {
		big = append(big, string(make([]byte, 2000)))
	}
	_, err := cl.ExecutePipeline(ctx(t), &execv1.ExecutePipelineRequest{Pipeline: "p", Select: big})
	if code := status.Code(err); code != codes.ResourceExhausted && code != codes.InvalidArgument {
		t.Errorf("a 2 MB request: %v, want RESOURCE_EXHAUSTED", err)
	}
}

func TestServer_HealthServiceAnswers(t *testing.T) {
	hc := healthpb.NewHealthClient(serve(t))
	resp, err := hc.Check(ctx(t), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("health %v", resp.GetStatus())
	}
}
