package server

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/apache/spark-connect-go/spark/sql"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// Ping asks the Spark Connect server at host:port to run SELECT 1 and checks
// the answer. A listening port is not enough: the gRPC service comes up
// before the session machinery behind it can run a query.
func Ping(ctx context.Context, addr string) error {
	b := &probeChannel{addr: addr}
	defer b.close()
	spark, err := sql.NewSessionBuilder().WithChannelBuilder(b).Build(ctx)
	if err != nil {
		return err
	}
	df, err := spark.Sql(ctx, "SELECT 1 AS one")
	if err != nil {
		return err
	}
	rows, err := df.Collect(ctx)
	if err != nil {
		return err
	}
	if len(rows) != 1 || rows[0].At(0) != int32(1) {
		return fmt.Errorf("SELECT 1 answered %v", rows)
	}
	return nil
}

// probeChannel is a channel.Builder that keeps the connection it makes so
// the probe can close it; the client never closes its own.
type probeChannel struct {
	addr string
	conn *grpc.ClientConn
}

func (b *probeChannel) Build(context.Context) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	b.conn = conn
	return conn, err
}

func (b *probeChannel) close() {
	if b.conn != nil {
		_ = b.conn.Close()
	}
}

func (b *probeChannel) User() string               { return "tauro-exec" }
func (b *probeChannel) Headers() map[string]string { return nil }
func (b *probeChannel) SessionId() string          { return "" } // the client makes its own
func (b *probeChannel) UserAgent() string          { return "tauro-exec/probe" }

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
